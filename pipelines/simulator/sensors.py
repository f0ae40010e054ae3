"""Machine physics: sensor readings, tool wear, a hidden degradation state and the failures they drive.

AI4I 2020 in spirit: tool-wear failures beyond ~200 min, overstrain (wear x torque), power outside a band, heat
dissipation (small process-air difference at low speed), degradation seen as rising vibration, and rare random
failures. Everything is vectorized per machine; only the segments between tool changes and failures loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from pipelines.simulator.config import PhysicsParams
from pipelines.simulator.plant import Grid, Machine, Plant, worked_shift

RUNNING, IDLE, DOWN, MAINTENANCE = 0, 1, 2, 3
STATE_NAMES = ("running", "idle", "down", "maintenance")
FAILURE_MODES = ("tool_wear", "overstrain", "power", "heat_dissipation", "degradation", "random")
ALARM_CODES: dict[str, tuple[str, ...]] = {  # the first digit names the failure mode
    "tool_wear": ("E101", "E102"),
    "overstrain": ("E201", "E202"),
    "power": ("E301", "E302"),
    "heat_dissipation": ("E401", "E402"),
    "degradation": ("A501", "A502"),
    "random": ("A901", "A902", "A903"),
}
DOWN_MINUTES: dict[str, tuple[int, int]] = {
    "tool_wear": (20, 60),
    "overstrain": (40, 120),
    "power": (60, 180),
    "heat_dissipation": (60, 180),
    "degradation": (120, 360),
    "random": (30, 240),
}
MAINTENANCE_MINUTES = (30, 120)
SETPOINT_BLOCK_MIN = 120  # a job (speed/torque set point) lasts two hours


@dataclass(frozen=True)
class Failure:
    """One failure: the slot the machine went down in, the mode and the alarm code."""

    machine_id: str
    slot: int
    mode: str
    alarm_code: str
    down_slots: int
    maintenance_slots: int


@dataclass
class MachineTimeline:
    """Per-slot arrays of one machine after simulation."""

    machine: Machine
    state: np.ndarray
    air: np.ndarray
    process: np.ndarray
    speed: np.ndarray
    torque: np.ndarray
    wear: np.ndarray
    vibration: np.ndarray
    degradation: np.ndarray
    failures: list[Failure]

    @property
    def running(self) -> np.ndarray:
        return self.state == RUNNING

    def electrical_kw(self) -> np.ndarray:
        """Electrical draw per slot: auxiliaries plus mechanical power over drive efficiency."""
        mech_kw = self.torque * self.speed * 2 * np.pi / 60 / 1000
        draw = np.where(self.running, 9.0 + mech_kw / 0.85, 1.5)
        return np.where(self.state == MAINTENANCE, 4.0, draw)


def calendar(grid: Grid, start_day: date) -> np.ndarray:
    """True for slots in a worked shift."""
    n_shifts = grid.n // grid.slots_per_shift
    worked = np.array(
        [worked_shift(start_day + timedelta(days=s // 3), s % 3) for s in range(n_shifts)], dtype=bool
    )
    return np.repeat(worked, grid.slots_per_shift)


def _idle_blocks(grid: Grid, worked: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Unplanned idle blocks (no material, no operator) of 30-150 min inside worked shifts."""
    sps = grid.slots_per_shift
    n_shifts = grid.n // sps
    hit = rng.random(n_shifts) < p
    length = np.maximum(1, np.round(rng.uniform(30, 150, n_shifts) / grid.dt_min)).astype(int)
    offset = rng.integers(0, sps, n_shifts)
    idle = np.zeros(grid.n, dtype=bool)
    for s in np.flatnonzero(hit & worked[::sps]):
        a = s * sps + offset[s]
        idle[a : min(a + length[s], (s + 1) * sps)] = True
    return idle


def _air_temperature(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Ambient air: yearly and daily seasonality plus a slow random walk (plant hall climate)."""
    minutes = np.arange(grid.n) * grid.dt_min
    day_of_year = grid.t0.timetuple().tm_yday + minutes / 1440
    hour = (grid.t0.hour + minutes / 60) % 24
    walk = np.cumsum(rng.normal(0, 0.03, grid.n))
    walk -= np.convolve(walk, np.ones(144) / 144, mode="same")  # keep the walk from drifting away
    return (
        296.0
        + 4.0 * np.sin(2 * np.pi * (day_of_year - 110) / 365)
        + 1.8 * np.sin(2 * np.pi * (hour - 9) / 24)
        + walk
        + rng.normal(0, 0.15, grid.n)
    )


def _setpoints(
    grid: Grid, machine: Machine, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Speed, torque and coolant offset per slot from two-hour jobs, with slot noise."""
    per_block = max(1, SETPOINT_BLOCK_MIN // grid.dt_min)
    blocks = -(-grid.n // per_block)
    speed_sp = machine.nominal_rpm + rng.normal(0, 170, blocks)
    torque_sp = 40 - 0.03 * (speed_sp - 1500) + rng.normal(0, 8.5, blocks)
    coolant = rng.normal(0, 0.7, blocks)
    speed = np.repeat(speed_sp, per_block)[: grid.n] + rng.normal(0, 20, grid.n)
    torque = np.repeat(torque_sp, per_block)[: grid.n] + rng.normal(0, 1.5, grid.n)
    return np.clip(speed, 300, 3000), np.clip(torque, 3, 90), np.repeat(coolant, per_block)[: grid.n]


def _static_hazard(
    phys: PhysicsParams, speed: np.ndarray, torque: np.ndarray, delta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-minute hazards that do not depend on wear or degradation: power band, heat dissipation, random."""
    power = torque * speed * 2 * np.pi / 60
    low, high = phys.power_band_w
    h_power = np.where((power < low) | (power > high), phys.power_hazard, 0.0)
    h_heat = np.where(
        (delta < phys.heat_min_delta_k) & (speed < phys.heat_max_speed_rpm), phys.heat_hazard, 0.0
    )
    h_random = np.full(speed.shape, phys.random_hazard)
    return h_power, h_heat, h_random


def _wear_hazards(phys: PhysicsParams, wear: np.ndarray, torque: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """Per-minute hazards of tool wear, overstrain and degradation, stacked as rows."""
    h_tool = phys.tool_wear_hazard * (np.maximum(wear - phys.tool_wear_onset_min, 0) / 40) ** 2
    h_strain = phys.overstrain_hazard * np.maximum(wear * torque - phys.overstrain_onset_minnm, 0) / 2000
    h_deg = phys.degradation_hazard * deg**4
    return np.vstack([h_tool, h_strain, h_deg])


def simulate_machine(
    grid: Grid,
    machine: Machine,
    worked: np.ndarray,
    air: np.ndarray,
    phys: PhysicsParams,
    rng: np.random.Generator,
) -> MachineTimeline:
    """Run one machine through the window: states, wear, degradation, failures and sensor values."""
    dt = grid.dt_min
    available = worked & ~_idle_blocks(grid, worked, phys.idle_block_probability, rng)
    speed, torque, coolant = _setpoints(grid, machine, rng)
    power = torque * speed * 2 * np.pi / 60
    delta = 9.6 + 0.00035 * (power - 6000) + coolant + rng.normal(0, 0.3, grid.n)
    h_power, h_heat, h_random = _static_hazard(phys, speed, torque, delta)
    run_min = available * float(dt)
    cum_run = np.cumsum(run_min)
    deg_inc = run_min * phys.degradation_rate * machine.degradation_rate * rng.gamma(0.5, 2.0, grid.n)
    cum_deg = np.cumsum(deg_inc)
    state = np.where(available, RUNNING, IDLE).astype(np.int8)
    wear = np.zeros(grid.n)
    deg = np.zeros(grid.n)
    failures: list[Failure] = []
    pos, wear_base, deg_base, deg_offset = 0, 0.0, 0.0, 0.0
    threshold = max(20.0, rng.normal(phys.tool_change_mean_min, phys.tool_change_sd_min))
    budget = rng.exponential()
    while pos < grid.n:
        change = int(np.searchsorted(cum_run, wear_base + threshold, side="left"))
        stop = min(change, grid.n - 1)
        sl = slice(pos, stop + 1)
        wear[sl] = cum_run[sl] - wear_base
        deg[sl] = deg_offset + cum_deg[sl] - deg_base
        wear_h = _wear_hazards(phys, wear[sl], torque[sl], deg[sl])
        parts = np.vstack([wear_h, h_power[sl], h_heat[sl], h_random[sl]]) * (
            run_min[sl] * phys.failure_scale
        )
        # order of rows: tool_wear, overstrain, degradation, power, heat_dissipation, random
        cum_h = np.cumsum(parts.sum(axis=0))
        hit = int(np.searchsorted(cum_h, budget, side="left"))
        if hit < cum_h.size:
            slot = pos + hit
            mode = _pick_mode(parts[:, hit], rng)
            failure = _fail(grid, machine, slot, mode, rng)
            failures.append(failure)
            end = min(grid.n, slot + 1 + failure.down_slots + failure.maintenance_slots)
            state[slot + 1 : min(grid.n, slot + 1 + failure.down_slots)] = DOWN
            state[min(grid.n, slot + 1 + failure.down_slots) : end] = MAINTENANCE
            wear[slot + 1 : end] = wear[slot]
            deg[slot + 1 : end] = deg[slot]
            deg_offset = deg[slot] * (phys.degradation_kept_after_repair if mode != "degradation" else 0.0)
            pos = end
            wear_base = cum_run[pos - 1]
            deg_base = cum_deg[pos - 1]
            threshold = max(20.0, rng.normal(phys.tool_change_mean_min, phys.tool_change_sd_min))
            budget = rng.exponential()
            continue
        budget -= float(cum_h[-1]) if cum_h.size else 0.0
        if change >= grid.n:
            break
        pos = change + 1  # planned tool change after this reading
        wear_base = cum_run[change]
        threshold = max(20.0, rng.normal(phys.tool_change_mean_min, phys.tool_change_sd_min))
    return _finish(machine, state, air, delta, speed, torque, wear, deg, failures, rng)


def _pick_mode(parts: np.ndarray, rng: np.random.Generator) -> str:
    order = ("tool_wear", "overstrain", "degradation", "power", "heat_dissipation", "random")
    p = parts / parts.sum()
    return order[int(rng.choice(len(order), p=p))]


def _fail(grid: Grid, machine: Machine, slot: int, mode: str, rng: np.random.Generator) -> Failure:
    low, high = DOWN_MINUTES[mode]
    down = max(1, round(rng.uniform(low, high) / grid.dt_min))
    maint = max(1, round(rng.uniform(*MAINTENANCE_MINUTES) / grid.dt_min))
    codes = ALARM_CODES[mode]
    return Failure(machine.machine_id, slot, mode, codes[int(rng.integers(len(codes)))], down, maint)


def _finish(
    machine: Machine,
    state: np.ndarray,
    air: np.ndarray,
    delta: np.ndarray,
    speed: np.ndarray,
    torque: np.ndarray,
    wear: np.ndarray,
    deg: np.ndarray,
    failures: list[Failure],
    rng: np.random.Generator,
) -> MachineTimeline:
    """Turn the physics into what the historian records (rounded, zero speed when not running)."""
    n = state.size
    running = state == RUNNING
    air_r = np.round(air + rng.normal(0, 0.1, n), 1)
    process = np.where(running, air + delta, air + 1.5 + rng.normal(0, 0.2, n))
    process_r = np.maximum(np.round(process, 1), air_r)
    speed_r = np.where(running, np.round(speed), 0.0)
    torque_r = np.where(running, np.round(torque, 1), 0.0)
    vib = np.where(
        running,
        1.2 + 0.004 * wear + 4.0 * deg + 0.0003 * (speed - 1500) + rng.normal(0, 0.25, n),
        0.15 + 0.3 * deg + rng.normal(0, 0.05, n),
    )
    return MachineTimeline(
        machine=machine,
        state=state,
        air=air_r,
        process=process_r,
        speed=speed_r,
        torque=torque_r,
        wear=np.clip(np.round(wear), 0, 999),
        vibration=np.clip(np.round(vib, 2), 0, 49),
        degradation=deg,
        failures=failures,
    )


def simulate_machines(plant: Plant, phys: PhysicsParams, rng: np.random.Generator) -> list[MachineTimeline]:
    """Simulate every machine; machines of a line share the hall air."""
    worked = calendar(plant.grid, plant.start)
    air_by_line = {line: _air_temperature(plant.grid, rng) for line in plant.line_ids}
    return [
        simulate_machine(plant.grid, m, worked, air_by_line[m.line_id], phys, rng) for m in plant.machines
    ]


def sensor_frame(grid: Grid, timelines: list[MachineTimeline]) -> pd.DataFrame:
    """The canonical ``sensor_readings`` table, machine by machine in time order."""
    ts = grid.times()
    ids = np.array([t.machine.machine_id for t in timelines], dtype=object)
    return pd.DataFrame(
        {
            "machine_id": np.repeat(ids, grid.n),
            "ts": np.tile(ts, len(timelines)),
            "air_temp_k": np.concatenate([t.air for t in timelines]),
            "process_temp_k": np.concatenate([t.process for t in timelines]),
            "speed_rpm": np.concatenate([t.speed for t in timelines]),
            "torque_nm": np.concatenate([t.torque for t in timelines]),
            "tool_wear_min": np.concatenate([t.wear for t in timelines]),
            "vibration_mm_s": np.concatenate([t.vibration for t in timelines]),
        }
    )
