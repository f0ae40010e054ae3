"""Production orders, their operations on the line's machines, material consumption by lot, and inspections.

Yield is physics, not decoration: the scrap probability of an operation rises with the mean tool wear and
vibration of its machine while it ran, with the hidden quality of the material lot, and with product difficulty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pipelines.simulator.plant import SHIFTS, Grid, Plant, Product, worked_shift
from pipelines.simulator.roster import Roster
from pipelines.simulator.sensors import MachineTimeline

CANCEL_PROBABILITY = 0.015
CLOSE_AFTER_DAYS = 3  # completed orders older than this are usually CLOSED by the planner


@dataclass
class Lot:
    """A material lot with a hidden quality factor (1 = perfect)."""

    lot_id: str
    material_id: str
    size: float
    remaining: float
    quality: float


@dataclass
class LotStore:
    """Lots per material, opened in turn as the previous one runs out."""

    rng: np.random.Generator
    lot_sizes: dict[str, float]
    lots: list[Lot] = field(default_factory=list)
    current: dict[str, Lot] = field(default_factory=dict)

    def draw(self, material_id: str, qty: float) -> list[tuple[Lot, float]]:
        """Take ``qty`` from the material's lots, opening new lots as needed."""
        taken = []
        while qty > 1e-9:
            lot = self.current.get(material_id)
            if lot is None or lot.remaining <= 1e-9:
                lot = self._open(material_id)
            part = min(qty, lot.remaining)
            lot.remaining -= part
            qty -= part
            taken.append((lot, part))
        return taken

    def _open(self, material_id: str) -> Lot:
        number = len(self.lots) + 1
        if number > 99_999:
            raise ValueError(
                "days: the simulation needs more than 99,999 lots (LOT-\\d{5}); simulate fewer days"
            )
        size = self.lot_sizes[material_id] * float(self.rng.uniform(0.8, 1.2))
        lot = Lot(f"LOT-{number:05d}", material_id, size, size, float(self.rng.beta(6.0, 1.2)))
        self.lots.append(lot)
        self.current[material_id] = lot
        return lot

    def frame(self) -> pd.DataFrame:
        """Hidden truth: every lot with its quality factor."""
        return pd.DataFrame(
            [(lot.lot_id, lot.material_id, round(lot.size, 3), round(lot.quality, 4)) for lot in self.lots],
            columns=["lot_id", "material_id", "size", "quality"],
        )


@dataclass
class MachineCursor:
    """Scheduling view of one machine: where it is available and its condition integrals."""

    timeline: MachineTimeline
    available_cum: np.ndarray
    wear_cum: np.ndarray
    vib_cum: np.ndarray
    free_from: int = 0

    @classmethod
    def of(cls, timeline: MachineTimeline) -> MachineCursor:
        run = timeline.running
        return cls(
            timeline,
            np.cumsum(run),
            np.cumsum(np.where(run, timeline.wear, 0.0)),
            np.cumsum(np.where(run, timeline.vibration, 0.0)),
        )

    def nth_available(self, first: int, n: int) -> int:
        """Slot of the n-th (1-based) available slot at or after ``first``; the grid size when beyond."""
        if first >= self.available_cum.size:
            return self.available_cum.size
        before = self.available_cum[first - 1] if first > 0 else 0
        return int(np.searchsorted(self.available_cum, before + n, side="left"))

    def condition(self, a: int, b: int) -> tuple[float, float]:
        """Mean tool wear and vibration over the running slots a..b."""

        def span(cum: np.ndarray) -> float:
            return float(cum[b] - (cum[a - 1] if a > 0 else 0.0))

        count = max(span(self.available_cum), 1.0)
        return span(self.wear_cum) / count, span(self.vib_cum) / count


def release_schedule(
    plant: Plant, per_day: int, rng: np.random.Generator
) -> list[tuple[datetime, str, str, Product]]:
    """(released_at, line, shift, product) for every order, in release order."""
    releases = []
    for line in plant.line_ids:
        for day in range(plant.days):
            production_day = plant.start + timedelta(days=day)
            for j in range(per_day):
                shift = j % 3
                if not worked_shift(production_day, shift):
                    continue
                at = plant.grid.t0 + timedelta(days=day, minutes=shift * 480 + int(rng.integers(0, 180)))
                product = plant.products[int(rng.integers(len(plant.products)))]
                releases.append((at, line, SHIFTS[shift], product))
    releases.sort(key=lambda r: (r[0], int(r[1][1:])))
    return releases


def _scrap_probability(
    product: Product, wear: float, vib: float, quality: float, rng: np.random.Generator
) -> float:
    p = (
        0.005
        + 0.02 * product.difficulty
        + 0.04 * (wear / 200.0) ** 2
        + 0.012 * max(0.0, vib - 2.5)
        + 0.10 * (1.0 - quality)
    ) * math.exp(rng.normal(0, 0.2))
    return min(p, 0.6)


@dataclass
class OrderBook:
    """Rows of the four order-side tables, built order by order."""

    orders: list[dict] = field(default_factory=list)
    operations: list[dict] = field(default_factory=list)
    consumption: list[dict] = field(default_factory=list)
    inspections: list[dict] = field(default_factory=list)


def _ts(grid: Grid, slot: int, extra_min: float = 0.0) -> datetime:
    return grid.time_of_slot(slot) + timedelta(minutes=extra_min)


def simulate_orders(
    plant: Plant,
    timelines: list[MachineTimeline],
    roster: Roster,
    per_day: int,
    rng: np.random.Generator,
) -> tuple[OrderBook, LotStore]:
    """Release, schedule and run every order; returns the table rows and the lots used."""
    grid = plant.grid
    cursors = {t.machine.machine_id: MachineCursor.of(t) for t in timelines}
    lots = LotStore(rng, {m: size for m, _, size in plant.materials})
    uoms = {m: uom for m, uom, _ in plant.materials}
    planners = roster.with_role("planner")
    inspectors = roster.with_role("inspector")
    book = OrderBook()
    for i, (released_at, line, shift, product) in enumerate(release_schedule(plant, per_day, rng)):
        order_id = f"WO-{100_001 + i}"
        planner = planners[int(rng.integers(len(planners)))]
        qty = int(rng.integers(product.qty_range[0], product.qty_range[1] + 1))
        order = {
            "order_id": order_id,
            "product_id": product.product_id,
            "line_id": line,
            "planned_qty": qty,
            "started_qty": None,
            "good_qty": None,
            "scrap_qty": None,
            "status": "RELEASED",
            "shift": shift,
            "released_at": released_at,
            "actual_start": None,
            "actual_end": None,
            "planner": planner.full_name,
        }
        machines = plant.line_machines(line)
        if rng.random() < CANCEL_PROBABILITY:
            order["status"] = "CANCELLED"
            _planned_ops(book, order_id, product, machines, 0, qty)
            book.orders.append(order)
            continue
        release_slot = math.ceil((released_at - grid.t0).total_seconds() / 60 / grid.dt_min)
        _run_order(book, order, product, machines, cursors, release_slot, grid, roster, lots, uoms, rng)
        book.orders.append(order)
        if order["status"] in ("COMPLETED", "CLOSED"):
            _inspect(book, order, product, grid, inspectors, rng)
    return book, lots


def _planned_ops(
    book: OrderBook, order_id: str, product: Product, machines: list, start_step: int, qty: int
) -> None:
    for step in range(start_step, len(product.routing)):
        machine = machines[product.routing[step]]
        book.operations.append(
            {
                "operation_id": f"{order_id}-{(step + 1) * 10:03d}",
                "order_id": order_id,
                "sequence": step + 1,
                "machine_id": machine.machine_id,
                "operator_id": None,
                "planned_duration_min": round(product.setup_min[step] + product.cycle_min[step] * qty, 1),
                "actual_start": None,
                "actual_end": None,
                "qty_in": qty,
                "qty_good": None,
                "qty_scrap": None,
                "status": "PLANNED",
            }
        )


def _run_order(
    book: OrderBook,
    order: dict,
    product: Product,
    machines: list,
    cursors: dict[str, MachineCursor],
    release_slot: int,
    grid: Grid,
    roster: Roster,
    lots: LotStore,
    uoms: dict[str, str],
    rng: np.random.Generator,
) -> None:
    """Schedule the routing greedily on the machines, then book quantities, statuses and consumption."""
    order_id, qty = order["order_id"], order["planned_qty"]
    qty_in, earliest, total_scrap, quality = qty, release_slot, 0, None
    for step, position in enumerate(product.routing):
        machine = machines[position]
        cursor = cursors[machine.machine_id]
        start = cursor.nth_available(max(earliest, cursor.free_from), 1)
        if start >= grid.n:  # not started inside the window
            _planned_ops(book, order_id, product, machines, step, qty_in)
            return
        planned = round(product.setup_min[step] + product.cycle_min[step] * qty_in, 1)
        duration = max(1, round(planned * float(rng.uniform(0.95, 1.15))))
        n_slots = -(-duration // grid.dt_min)
        end = cursor.nth_available(start, n_slots)
        started_at = _ts(grid, start)
        if step == 0:
            order["status"], order["started_qty"], order["actual_start"] = "IN_PROGRESS", qty, started_at
            quality = _consume(book, order_id, product, qty, started_at, lots, uoms, rng)
        crew = roster.crew(machine.line_id, SHIFTS[(start // grid.slots_per_shift) % 3])
        operation = {
            "operation_id": f"{order_id}-{(step + 1) * 10:03d}",
            "order_id": order_id,
            "sequence": step + 1,
            "machine_id": machine.machine_id,
            "operator_id": crew[int(rng.integers(len(crew)))].employee_no,
            "planned_duration_min": planned,
            "actual_start": started_at,
            "actual_end": None,
            "qty_in": qty_in,
            "qty_good": None,
            "qty_scrap": None,
            "status": "RUNNING",
        }
        ended_at = _ts(grid, min(end, grid.n - 1), duration - (n_slots - 1) * grid.dt_min)
        cursor.free_from = end + 1
        if end >= grid.n or ended_at > grid.end:
            book.operations.append(operation)
            _planned_ops(book, order_id, product, machines, step + 1, qty_in)
            return
        wear, vib = cursor.condition(start, end)
        scrap = int(rng.binomial(qty_in, _scrap_probability(product, wear, vib, quality or 1.0, rng)))
        operation.update(actual_end=ended_at, qty_good=qty_in - scrap, qty_scrap=scrap, status="COMPLETED")
        book.operations.append(operation)
        total_scrap += scrap
        qty_in -= scrap
        earliest = end + 1
    order.update(status="COMPLETED", good_qty=qty_in, scrap_qty=total_scrap, actual_end=ended_at)
    if ended_at < grid.end - timedelta(days=CLOSE_AFTER_DAYS) and rng.random() < 0.7:
        order["status"] = "CLOSED"


def _consume(
    book: OrderBook,
    order_id: str,
    product: Product,
    qty: int,
    at: datetime,
    lots: LotStore,
    uoms: dict[str, str],
    rng: np.random.Generator,
) -> float:
    """Book material for the whole order at its start; returns the quality of the main material's first lot."""
    main_quality = 1.0
    for k, (material_id, per_unit) in enumerate(product.bom):
        # harder products waste more material in setup and trimming
        need = per_unit * qty * float(rng.uniform(1.0, 1.03)) * (1 + 0.06 * product.difficulty)
        decimals = 0 if uoms[material_id] == "pcs" else 3
        for j, (lot, part) in enumerate(lots.draw(material_id, need)):
            if k == 0 and j == 0:
                main_quality = lot.quality
            amount = round(part, decimals)
            if amount <= 0:
                continue
            book.consumption.append(
                {
                    "order_id": order_id,
                    "material_id": material_id,
                    "lot_id": lot.lot_id,
                    "qty": float(amount),
                    "uom": uoms[material_id],
                    "consumed_at": at + timedelta(minutes=k + j),
                }
            )
    return main_quality


def _inspect(
    book: OrderBook, order: dict, product: Product, grid: Grid, inspectors: list, rng: np.random.Generator
) -> None:
    """One inspection per characteristic; spread grows with the order's scrap rate."""
    scrap_rate = order["scrap_qty"] / max(order["started_qty"], 1)
    for k, (name, nominal, half_tol) in enumerate(product.characteristics):
        at = order["actual_end"] + timedelta(minutes=int(rng.integers(5, 90)) + k)
        if at > grid.end:
            continue
        sd = half_tol / 3 * (1 + 12 * scrap_rate)
        value = round(nominal + float(rng.normal(0, sd)), 4)
        low, high = round(nominal - half_tol, 4), round(nominal + half_tol, 4)
        inspector = inspectors[int(rng.integers(len(inspectors)))]
        book.inspections.append(
            {
                "order_id": order["order_id"],
                "characteristic": name,
                "measured_value": value,
                "lower_limit": low,
                "upper_limit": high,
                "result": "PASS" if low <= value <= high else "FAIL",
                "inspected_at": at,
                "inspector_id": None if rng.random() < 0.03 else inspector.employee_no,
                "remark": None,
            }
        )
