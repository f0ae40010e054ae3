"""The feature context of the service: curated history, and each machine's latest sensor features.

Built from the curated zone when the service starts and again whenever a new curated batch appears, with the
same feature functions training used (models/), so a served prediction sees what training saw:
- failure: one feature row per machine at its latest sensor reading ("the latest sensor context");
- yield: the features of an order as known at its release, from the curated history;
- consumption: a meter's day-ahead features from its readings up to the day's origin.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from models.consumption_features import ENERGY_READINGS, build_features
from models.failure_features import build_failure_features
from models.yield_features import ENTITY_COLUMNS, FinishedOrders, build_yield_features, finished_orders
from pipelines.training import TASK_TABLES
from pipelines.zones import ZoneStore

CONTEXT_TABLES = tuple(sorted({t for tables in TASK_TABLES.values() for t in tables}))
# Orders sent with their own header (new releases) whose features were built: a redelivered event or a repeated
# request finds them again instead of rebuilding (~0.13 s each, nearly all of it fixed cost per build).
SENT_ORDERS_CACHED = 10_000
METER_DAYS_CACHED = (
    1_000  # a meter-day's 96 feature rows (~25 ms to build): every order released that day asks
)


class UnknownEntityError(LookupError):
    """The machine, order or meter of a request is not known to the service (names which and what to send)."""


@dataclass(frozen=True, slots=True)
class MachineContext:
    """A machine's latest features: when they were taken and their values by name."""

    machine_id: str
    line_id: str | None
    forecast_at: pd.Timestamp
    features: dict[str, Any]


def context_signature(home: Path) -> tuple[tuple[str, int], ...]:
    """Names and sizes of the curated files the context is built from: it changes when a batch lands."""
    store = ZoneStore(home)
    return tuple(
        (f"{table}/{path.name}", path.stat().st_size)
        for table in CONTEXT_TABLES
        for path in store.batch_files("curated", table)
    )


class FeatureContext:
    """Curated tables in memory plus the machines' latest failure features."""

    def __init__(self, tables: dict[str, pd.DataFrame], signature: tuple[tuple[str, int], ...]) -> None:
        self.tables = tables
        self.signature = signature
        self.machines = _latest_machine_features(tables)
        orders = tables.get("production_orders", pd.DataFrame())
        self._orders = orders.set_index("order_id", drop=False) if not orders.empty else orders
        self._order_features = _ingested_order_features(tables)
        self._sent_order_features: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._meter_days: OrderedDict[tuple[str, pd.Timestamp], pd.DataFrame] = OrderedDict()
        self._meter_last: dict[str, pd.Timestamp] | None = None
        self._finished: FinishedOrders | None = None
        self._sent_lock = threading.Lock()

    @classmethod
    def load(cls, home: Path) -> FeatureContext:
        """Read every curated batch of the context tables (an empty zone gives an empty context)."""
        store = ZoneStore(home)
        tables = {}
        for name in CONTEXT_TABLES:
            frame = store.read_all("curated", name)
            tables[name] = frame.drop(columns=[c for c in frame.columns if c.startswith("_")])
        return cls(tables, context_signature(home))

    # --- failure ------------------------------------------------------------------------------------
    def machine(self, machine_id: str) -> MachineContext:
        """The machine's latest features; UnknownEntityError when no sensor reading of it was ingested."""
        found = self.machines.get(machine_id)
        if found is None:
            raise UnknownEntityError(
                f"machine_id: no sensor readings of machine {machine_id!r} have been ingested; "
                "send its features instead"
            )
        return found

    def line_of_machine(self, machine_id: str) -> str | None:
        """The line a machine belongs to (None when the machine is unknown)."""
        found = self.machines.get(machine_id)
        return None if found is None else found.line_id

    # --- yield ------------------------------------------------------------------------------------------
    def order_header(self, order_id: str) -> dict[str, Any]:
        """The release-time header of an ingested order; UnknownEntityError when it was not ingested."""
        if self._orders.empty or order_id not in self._orders.index:
            raise UnknownEntityError(
                f"order_id: order {order_id!r} has not been ingested; send its header in 'order'"
            )
        row = self._orders.loc[order_id]
        return {column: row[column] for column in ENTITY_COLUMNS}

    def yield_features(self, header: dict[str, Any]) -> dict[str, Any]:
        """The order's features as known at its release (None where nothing was known yet).

        An ingested order's features were built once with the context (its header is the curated one); an
        order sent with its own header is built on request from the same history.
        """
        return self.yield_features_many([header])[0]

    def yield_features_many(self, headers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The features of several orders, in order: those not ingested nor seen before built in ONE pass.

        Building costs about the same for one order as for a hundred (it walks the history once), so callers
        with several new orders at hand (the event bridge, a batch request) ask for them together.
        """
        if not _has_yield_history(self.tables):
            raise UnknownEntityError("order_id: no production history has been ingested yet")
        found = [self._known_features(h) for h in headers]
        missing = {_header_key(h): h for h, f in zip(headers, found, strict=True) if f is None}
        built: dict[tuple[Any, ...], dict[str, Any]] = {}
        if missing:
            orders = _naive_utc_orders(list(missing.values()))
            frame = build_yield_features(self.tables, orders, history=self._finished_orders())
            built = dict(zip(missing, _features_as_dicts(frame), strict=True))
            with self._sent_lock:
                self._sent_order_features.update(built)
                while len(self._sent_order_features) > SENT_ORDERS_CACHED:
                    self._sent_order_features.popitem(last=False)
        return [
            dict(f if f is not None else built[_header_key(h)]) for h, f in zip(headers, found, strict=True)
        ]

    def _finished_orders(self) -> FinishedOrders:
        """The history's finished orders and residuals, prepared once per context (a quarter of a build)."""
        if self._finished is None:
            self._finished = finished_orders(self.tables)
        return self._finished

    def _known_features(self, header: dict[str, Any]) -> dict[str, Any] | None:
        known = self._order_features.get(header["order_id"])
        if known is not None and header == self.order_header(header["order_id"]):
            return known
        with self._sent_lock:
            return self._sent_order_features.get(_header_key(header))

    # --- consumption ----------------------------------------------------------------------------------
    def consumption_features(self, meter_id: str, day: date | None) -> pd.DataFrame:
        """The 96 feature rows of a meter's day (default: the day after its last reading)."""
        last_reading = self._meter_last_readings().get(meter_id)
        if last_reading is None:
            raise UnknownEntityError(f"meter_id: no energy readings of meter {meter_id!r} have been ingested")
        last = last_reading - pd.Timedelta(minutes=15)
        next_day = last.normalize() + pd.Timedelta(days=1)
        target = next_day if day is None else pd.Timestamp(day, tz=next_day.tz)
        if target > next_day:
            raise UnknownEntityError(
                f"day: readings of meter {meter_id!r} end on {last.date()}; the latest day that can be "
                f"forecast is {next_day.date()}"
            )
        key = (meter_id, target)
        with self._sent_lock:
            cached = self._meter_days.get(key)
        if cached is None:
            readings = self.tables["energy_readings"]
            mine = readings[readings["meter_id"] == meter_id]
            cached = build_features(mine, ENERGY_READINGS, [target], [meter_id])
            with self._sent_lock:  # a meter-day's features only change with new readings (a new context)
                self._meter_days[key] = cached
                while len(self._meter_days) > METER_DAYS_CACHED:
                    self._meter_days.popitem(last=False)
        return cached.copy()

    def _meter_last_readings(self) -> dict[str, pd.Timestamp]:
        """Each meter's last reading time, found once per context (converting a meter's times per request
        was most of a consumption request's cost)."""
        if self._meter_last is None:
            readings = self.tables.get("energy_readings")
            if readings is None or readings.empty:
                raise UnknownEntityError("meter_id: no energy readings have been ingested yet")
            times = pd.to_datetime(readings["ts"])
            self._meter_last = times.groupby(readings["meter_id"]).max().to_dict()
        return self._meter_last


def _latest_machine_features(tables: dict[str, pd.DataFrame]) -> dict[str, MachineContext]:
    sensors = tables.get("sensor_readings")
    needed = ("sensor_readings", "machine_events", "machines")
    if sensors is None or any(tables.get(t) is None or tables[t].empty for t in needed):
        return {}
    latest = sensors.groupby("machine_id", as_index=False)["ts"].max().rename(columns={"ts": "forecast_at"})
    features = build_failure_features(tables, latest)
    lines = tables["machines"].set_index("machine_id")["line_id"].to_dict()
    found = {}
    for (_, key), (_, row) in zip(latest.iterrows(), features.iterrows(), strict=True):
        values = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        found[key["machine_id"]] = MachineContext(
            key["machine_id"], lines.get(key["machine_id"]), _utc(pd.Timestamp(key["forecast_at"])), values
        )
    return found


def _utc(moment: pd.Timestamp) -> pd.Timestamp:
    """Curated timestamps are UTC without a zone: say so, so responses carry an unambiguous time."""
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def _has_yield_history(tables: dict[str, pd.DataFrame]) -> bool:
    return all(tables.get(t) is not None and not tables[t].empty for t in TASK_TABLES["yield"])


def _header_key(header: dict[str, Any]) -> tuple[Any, ...]:
    """An order header as a hashable key (same order id with another header is another order)."""
    return tuple((column, str(header.get(column))) for column in ENTITY_COLUMNS)


def _naive_utc_orders(headers: list[dict[str, Any]]) -> pd.DataFrame:
    """Order headers as a frame; curated timestamps are naive UTC, a request's are aware: both as naive UTC."""
    orders = pd.DataFrame(headers)
    orders["released_at"] = pd.to_datetime(orders["released_at"], utc=True).dt.tz_localize(None)
    return orders


def _features_as_dicts(features: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in features.to_dict("records")
    ]


def _ingested_order_features(tables: dict[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """The release-time features of every ingested order, built in one pass (a request then only looks up:
    building one order's features from the whole history costs about a third of a second)."""
    orders = tables.get("production_orders")
    if orders is None or orders.empty or not _has_yield_history(tables):
        return {}
    headers = orders[list(ENTITY_COLUMNS)].drop_duplicates("order_id")
    built = build_yield_features(tables, _naive_utc_orders(headers.to_dict("records")))
    return dict(zip(headers["order_id"], _features_as_dicts(built), strict=True))
