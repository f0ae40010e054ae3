"""Line energy meters: kWh per 15 minutes from base load, running machines, shift and calendar effects."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.simulator.plant import Plant
from pipelines.simulator.sensors import MachineTimeline, calendar

METER_INTERVAL_MIN = 15
BASE_KW = 60.0  # lighting, ventilation, compressed air of one line hall
SHIFT_FACTOR = (1.0, 1.05, 0.9)  # A, B, C: the late shift runs with less hall lighting and HVAC


def _line_energy(plant: Plant, timelines: list[MachineTimeline], edges_min: np.ndarray) -> np.ndarray:
    """Machine energy [kWh] per meter interval, exact for the slot-wise constant draw of each machine."""
    grid = plant.grid
    slot_edges = np.arange(grid.n + 1) * grid.dt_min
    total = np.zeros(edges_min.size - 1)
    for t in timelines:
        cum = np.concatenate([[0.0], np.cumsum(t.electrical_kw() * grid.dt_min / 60)])
        total += np.diff(np.interp(edges_min, slot_edges, cum))
    return total


def energy_readings(plant: Plant, timelines: list[MachineTimeline], rng: np.random.Generator) -> pd.DataFrame:
    """The canonical ``energy_readings`` table: one row per line meter and interval (ts = interval end)."""
    grid = plant.grid
    n = plant.days * 24 * 60 // METER_INTERVAL_MIN
    edges = np.arange(n + 1) * METER_INTERVAL_MIN
    ends = np.datetime64(grid.t0, "ns") + edges[1:].astype("int64") * np.timedelta64(60, "s").astype("m8[ns]")
    mid_min = edges[:-1] + METER_INTERVAL_MIN / 2
    hour = (grid.t0.hour + mid_min / 60) % 24
    shift = ((mid_min % 1440) // 480).astype(int)
    worked = calendar(grid, plant.start)[np.minimum((mid_min // grid.dt_min).astype(int), grid.n - 1)]
    hall_kw = BASE_KW * np.where(worked, 1.0, 0.55) * np.take(SHIFT_FACTOR, shift)
    hall_kw = hall_kw * (1 + 0.12 * np.sin(2 * np.pi * (hour - 8) / 24))  # daytime HVAC
    frames = []
    for line in plant.line_ids:
        line_tl = [t for t in timelines if t.machine.line_id == line]
        kwh = hall_kw * METER_INTERVAL_MIN / 60 + _line_energy(plant, line_tl, edges)
        kwh = np.maximum(kwh * (1 + rng.normal(0, 0.03, n)) + rng.normal(0, 0.5, n), 0.0)
        frames.append(
            pd.DataFrame({"meter_id": f"EM-{line}", "line_id": line, "ts": ends, "kwh": np.round(kwh, 3)})
        )
    return pd.concat(frames, ignore_index=True)
