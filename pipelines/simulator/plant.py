"""The static plant: machines on lines, products with routings, materials, and the time grid of the simulation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from pipelines.simulator.config import SHIFT_MINUTES, SimulationConfig

MACHINE_TYPES = ("cnc_lathe", "cnc_mill", "press", "assembly", "paint", "packaging")
SHIFTS = ("A", "B", "C")
DAY_START_HOUR = 6  # shift A starts at 06:00; a production day runs 06:00 -> 06:00
UOMS = ("kg", "pcs", "m", "l")
CHARACTERISTICS: dict[str, tuple[float, float, float]] = {
    # name: (nominal low, nominal high, half tolerance as a share of nominal)
    "diameter_mm": (10.0, 80.0, 0.002),
    "length_mm": (50.0, 300.0, 0.0015),
    "surface_ra_um": (0.4, 1.6, 0.5),
    "hardness_hrc": (45.0, 62.0, 0.05),
    "coating_um": (15.0, 40.0, 0.2),
}


@dataclass(frozen=True)
class Machine:
    """One machine and its place on a line; ``nominal_rpm`` is hidden physics, not master data."""

    machine_id: str
    line_id: str
    position: int
    machine_type: str
    work_center_id: str
    commissioned_on: date
    nominal_rpm: float
    degradation_rate: float  # multiplier of the plant's degradation rate


@dataclass(frozen=True)
class Product:
    """A product: routing over line positions, cycle times, bill of materials and inspected characteristics."""

    product_id: str
    difficulty: float
    routing: tuple[int, ...]
    cycle_min: tuple[float, ...]
    setup_min: tuple[float, ...]
    qty_range: tuple[int, int]
    bom: tuple[tuple[str, float], ...]  # (material_id, quantity per unit)
    characteristics: tuple[tuple[str, float, float], ...]  # (name, nominal, half tolerance)


@dataclass(frozen=True)
class Grid:
    """The sensor time grid: slot k covers [t0 + k*dt, t0 + (k+1)*dt)."""

    t0: datetime
    dt_min: int
    n: int

    @property
    def end(self) -> datetime:
        return self.t0 + timedelta(minutes=self.dt_min * self.n)

    @property
    def slots_per_shift(self) -> int:
        return SHIFT_MINUTES // self.dt_min

    def times(self) -> np.ndarray:
        """Slot start times as datetime64[ns]."""
        start = np.datetime64(self.t0, "ns")
        return start + np.arange(self.n, dtype="int64") * np.timedelta64(self.dt_min, "m").astype("m8[ns]")

    def shift_index(self) -> np.ndarray:
        """Global shift number (0 = first shift A) of every slot."""
        return np.arange(self.n) // self.slots_per_shift

    def time_of_slot(self, k: int) -> datetime:
        return self.t0 + timedelta(minutes=self.dt_min * int(k))


@dataclass(frozen=True)
class Plant:
    """Everything about the plant that does not change during the simulation."""

    machines: tuple[Machine, ...]
    products: tuple[Product, ...]
    materials: tuple[tuple[str, str, float], ...]  # (material_id, uom, lot size)
    grid: Grid
    start: date
    days: int

    def line_machines(self, line_id: str) -> list[Machine]:
        return [m for m in self.machines if m.line_id == line_id]

    @property
    def line_ids(self) -> list[str]:
        return sorted({m.line_id for m in self.machines}, key=lambda s: int(s[1:]))

    def machines_frame(self) -> pd.DataFrame:
        """The canonical ``machines`` table."""
        cols = ["machine_id", "work_center_id", "line_id", "machine_type", "commissioned_on"]
        return pd.DataFrame([{c: getattr(m, c) for c in cols} for m in self.machines], columns=cols)


def worked_shift(day: date, shift: int) -> bool:
    """Mon-Fri all three shifts, Saturday shift A; the plant stands Saturday 14:00 to Monday 06:00."""
    weekday = day.weekday()
    return weekday < 5 or (weekday == 5 and shift == 0)


def build_plant(config: SimulationConfig, rng: np.random.Generator) -> Plant:
    """Draw machines, products and materials for a configuration."""
    machines = []
    for line in range(config.lines):
        for pos in range(config.machines_per_line):
            number = line * config.machines_per_line + pos + 1
            mtype = MACHINE_TYPES[pos % len(MACHINE_TYPES)]
            machines.append(
                Machine(
                    machine_id=f"M-{number:02d}",
                    line_id=f"L{line + 1}",
                    position=pos,
                    machine_type=mtype,
                    work_center_id=f"WC-L{line + 1}-{mtype.upper().replace('_', '-')}",
                    commissioned_on=date(2008, 1, 1) + timedelta(days=int(rng.integers(0, 14 * 365))),
                    nominal_rpm=float(rng.uniform(1420, 1620)),
                    degradation_rate=float(rng.uniform(0.6, 1.5)),
                )
            )
    materials = tuple(
        (f"RM-{i + 1:03d}", UOMS[int(rng.integers(len(UOMS)))], float(rng.choice([500, 1000, 2000, 5000])))
        for i in range(config.materials)
    )
    products = tuple(_product(i, config, materials, rng) for i in range(config.products))
    grid = Grid(
        t0=datetime.combine(config.start, datetime.min.time()) + timedelta(hours=DAY_START_HOUR),
        dt_min=config.sensor_interval_min,
        n=config.days * 24 * 60 // config.sensor_interval_min,
    )
    return Plant(tuple(machines), products, materials, grid, config.start, config.days)


def _product(i: int, config: SimulationConfig, materials: tuple, rng: np.random.Generator) -> Product:
    mpl = config.machines_per_line
    n_steps = int(rng.integers(min(2, mpl), min(5, mpl) + 1))
    routing = tuple(sorted(int(p) for p in rng.choice(mpl, size=n_steps, replace=False)))
    n_bom = int(rng.integers(1, min(2, len(materials)) + 1))
    bom = tuple(
        (materials[int(k)][0], round(float(rng.uniform(0.2, 3.0)), 3))
        for k in rng.choice(len(materials), size=n_bom, replace=False)
    )
    names = list(CHARACTERISTICS)
    chars = []
    for k in rng.choice(len(names), size=2, replace=False):
        low, high, tol_share = CHARACTERISTICS[names[int(k)]]
        nominal = round(float(rng.uniform(low, high)), 2)
        chars.append((names[int(k)], nominal, round(max(nominal * tol_share, 0.01), 3)))
    low_qty = int(rng.integers(60, 200))
    return Product(
        product_id=f"P-{101 + i:03d}",
        difficulty=round(float(rng.uniform(0, 1)), 3),
        routing=routing,
        cycle_min=tuple(round(float(rng.uniform(0.12, 0.45)), 3) for _ in routing),
        setup_min=tuple(round(float(rng.uniform(10, 30)), 1) for _ in routing),
        qty_range=(low_qty, low_qty + int(rng.integers(100, 300))),
        bom=bom,
        characteristics=tuple(chars),
    )
