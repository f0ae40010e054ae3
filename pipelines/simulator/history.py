"""``simulate``: one seeded run of the whole plant, returned as canonical tables plus the hidden truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts.contract import ColumnType, Contract, load_contracts
from pipelines.simulator.config import SimulationConfig, default_contracts_dir
from pipelines.simulator.defects import DefectPlanter, PlantedDefect
from pipelines.simulator.emit import write_file_drop
from pipelines.simulator.energy import energy_readings
from pipelines.simulator.events import machine_events
from pipelines.simulator.notes import LineVocabulary, PlantedEntity, TextContext, TextWriter, shift_notes
from pipelines.simulator.orders import OrderBook, simulate_orders
from pipelines.simulator.plant import Plant, build_plant
from pipelines.simulator.roster import Roster, build_roster
from pipelines.simulator.sensors import sensor_frame, simulate_machines

TABLES = (
    "machines",
    "employees",
    "production_orders",
    "operations",
    "machine_events",
    "sensor_readings",
    "material_consumption",
    "energy_readings",
    "inspections",
    "shift_notes",
)
# Independent random streams, so changing one part of the simulator does not shift the draws of another.
STREAMS = ("plant", "roster", "machines", "orders", "events", "energy", "notes", "remarks", "defects")


@dataclass
class PlantHistory:
    """A simulated MES history: canonical tables (contract columns, in contract order) and the hidden truth."""

    config: SimulationConfig
    tables: dict[str, pd.DataFrame]
    personal_truth: list[PlantedEntity] = field(default_factory=list)
    planted_defects: list[PlantedDefect] = field(default_factory=list)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    lots: pd.DataFrame = field(default_factory=pd.DataFrame)
    roster: Roster | None = None

    def __getitem__(self, table: str) -> pd.DataFrame:
        return self.tables[table]

    def write_parquet(self, folder: Path) -> list[Path]:
        """Write every table as ``<table>.parquet`` (defected columns as text) and return the paths."""
        folder.mkdir(parents=True, exist_ok=True)
        return [write_file_drop(frame, folder / f"{name}.parquet") for name, frame in self.tables.items()]


def _typed(rows: pd.DataFrame | list[dict], contract: Contract) -> pd.DataFrame:
    """Give a table exactly its contract's columns, in order, with canonical dtypes."""
    frame = pd.DataFrame(rows, columns=contract.column_names) if isinstance(rows, list) else rows
    frame = frame[contract.column_names].copy()
    for col in contract.columns:
        s = frame[col.name]
        if col.type is ColumnType.INTEGER:
            frame[col.name] = s.astype("Int64") if col.nullable else s.astype("int64")
        elif col.type is ColumnType.FLOAT:
            frame[col.name] = s.astype("float64")
        elif col.type is ColumnType.TIMESTAMP:
            frame[col.name] = pd.to_datetime(s).astype("datetime64[ns]")
        else:  # strings and dates stay python objects (None for nulls)
            frame[col.name] = s.astype(object).where(s.notna(), None)
    return frame.reset_index(drop=True)


def _sorted_with_ids(
    rows: list[dict], sort_by: list[str], id_column: str, prefix: str, width: int
) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[id_column, *sort_by])
    frame = frame.sort_values(sort_by, kind="stable").reset_index(drop=True)
    frame.insert(0, id_column, [f"{prefix}-{i + 1:0{width}d}" for i in range(len(frame))])
    return frame


def _remarks(
    inspections: pd.DataFrame,
    orders: pd.DataFrame,
    writer: TextWriter,
    probability: float,
    rng: np.random.Generator,
) -> list[PlantedEntity]:
    """Fill some inspection remarks in place; returns their planted entities."""
    truth: list[PlantedEntity] = []
    products = dict(zip(orders["order_id"], orders["product_id"], strict=True))
    lines = dict(zip(orders["order_id"], orders["line_id"], strict=True))
    remarks = []
    for inspection_id, order_id in zip(inspections["inspection_id"], inspections["order_id"], strict=True):
        if rng.random() >= probability:
            remarks.append(None)
            continue
        ctx = TextContext(line_id=lines[order_id], orders=[order_id], parts=[products[order_id]])
        text, planted = writer.remark(inspection_id, ctx)
        remarks.append(text)
        truth.extend(planted)
    inspections["remark"] = remarks
    return truth


def simulate(config: SimulationConfig, contracts_dir: Path | None = None) -> PlantHistory:
    """Simulate the plant for ``config``; the same config always gives identical tables."""
    contracts = load_contracts(contracts_dir or default_contracts_dir())
    rngs = {name: np.random.default_rng([config.seed, i]) for i, name in enumerate(STREAMS)}
    plant = build_plant(config, rngs["plant"])
    roster = build_roster(
        rngs["roster"],
        config.employees,
        config.n_planners,
        config.n_inspectors,
        config.lines,
        config.plant_domain,
    )
    timelines = simulate_machines(plant, config.physics, rngs["machines"])
    book, lots = simulate_orders(plant, timelines, roster, config.orders_per_line_per_day, rngs["orders"])
    writer = TextWriter(roster, rngs["notes"])
    tables, truth = _order_tables(book, contracts, writer, config, rngs["remarks"])
    events, andon_truth = machine_events(
        plant, timelines, roster, writer, config.andon_comment_probability, rngs["events"]
    )
    failures = sorted(
        (plant.grid.time_of_slot(f.slot + 1), f.machine_id, f.alarm_code, f.mode)
        for t in timelines
        for f in t.failures
    )
    vocabulary = LineVocabulary(
        plant,
        tables["production_orders"],
        tables["material_consumption"],
        [(at, m, code) for at, m, code, _ in failures],
    )
    notes, note_truth = shift_notes(plant, roster, writer, vocabulary, config.notes_per_shift, rngs["notes"])
    tables |= {
        "machines": _typed(plant.machines_frame(), contracts["machines"]),
        "employees": _typed(roster.frame(), contracts["employees"]),
        "machine_events": _typed(events, contracts["machine_events"]),
        "sensor_readings": _typed(sensor_frame(plant.grid, timelines), contracts["sensor_readings"]),
        "energy_readings": _typed(
            energy_readings(plant, timelines, rngs["energy"]), contracts["energy_readings"]
        ),
        "shift_notes": _typed(notes, contracts["shift_notes"]),
    }
    history = PlantHistory(
        config=config,
        tables={name: tables[name] for name in TABLES},
        personal_truth=truth + andon_truth + note_truth,
        failures=pd.DataFrame(failures, columns=["failed_at", "machine_id", "alarm_code", "mode"]),
        lots=lots.frame(),
        roster=roster,
    )
    if config.defect_rate > 0:
        _plant_defects(
            history, contracts, DefectPlanter(rngs["defects"], config.defect_kinds, _machine_ids(plant))
        )
    return history


def _machine_ids(plant: Plant) -> set[str]:
    return {m.machine_id for m in plant.machines}


def _order_tables(
    book: OrderBook,
    contracts: dict[str, Contract],
    writer: TextWriter,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> tuple[dict[str, pd.DataFrame], list[PlantedEntity]]:
    orders = _typed(book.orders, contracts["production_orders"])
    operations = _typed(book.operations, contracts["operations"])
    consumption = _sorted_with_ids(book.consumption, ["consumed_at", "order_id"], "consumption_id", "MC", 7)
    inspections = _sorted_with_ids(book.inspections, ["inspected_at", "order_id"], "inspection_id", "QI", 7)
    truth = _remarks(inspections, orders, writer, config.remark_probability, rng) if len(inspections) else []
    if inspections.empty:
        inspections = pd.DataFrame(columns=contracts["inspections"].column_names)
    if consumption.empty:
        consumption = pd.DataFrame(columns=contracts["material_consumption"].column_names)
    return {
        "production_orders": orders,
        "operations": operations,
        "material_consumption": _typed(consumption, contracts["material_consumption"]),
        "inspections": _typed(inspections, contracts["inspections"]),
    }, truth


def _plant_defects(history: PlantHistory, contracts: dict[str, Contract], planter: DefectPlanter) -> None:
    """Plant defects in every table but the roster, and drop truth of free text that was nulled."""
    reports: list[PlantedDefect] = []
    for name in TABLES:
        if contracts[name].landing_only:
            continue
        history.tables[name], planted = planter.plant(
            history.tables[name], contracts[name], history.config.defect_rate
        )
        reports.extend(planted)
    nulled = {(d.table, d.key, d.column) for d in reports if d.kind == "null"}
    history.personal_truth = [e for e in history.personal_truth if (e.table, e.key, e.column) not in nulled]
    history.planted_defects = reports
