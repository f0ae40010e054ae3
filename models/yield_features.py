"""Yield features of production orders as known at their release: one function for training and serving.

``build_yield_features(tables, orders)`` gives one row per order from the curated tables, using for each order
only what was recorded strictly before its ``released_at``:

- the order itself: planned quantity, shift, routing length (its operations rows: the routing is planned at
  release);
- product history: mean yield of the product's orders finished before release;
- the routing's machines: latest tool wear, recent vibration and torque while running (sensor_readings), down
  events (machine_events), recent scrap share of their operations (operations
  that ended before release);
- the material lots of the order (its material_consumption rows: an MES assigns lots at release): how orders
  that used the same lot and finished before release yielded compared with their product's mean, shrunk
  toward 0 (an average lot) while a lot has little history; the first booking of the order is its main
  material (BOM line 1);
- the line's recent residual yield.

Nothing here reads an order's own outcome: history only counts orders that ended before the release.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from models.yield_history import (
    as_float,
    known_outcomes,
    product_yield_as_of,
    shrunk_mean,
    sums_before,
    sums_in_window,
    with_residuals,
)

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "production_orders": (
        "order_id",
        "product_id",
        "line_id",
        "planned_qty",
        "started_qty",
        "good_qty",
        "status",
        "shift",
        "released_at",
        "actual_end",
    ),
    "operations": (
        "order_id",
        "sequence",
        "machine_id",
        "actual_end",
        "qty_in",
        "qty_scrap",
        "status",
    ),
    "material_consumption": ("consumption_id", "order_id", "lot_id", "consumed_at"),
    "sensor_readings": ("machine_id", "ts", "speed_rpm", "torque_nm", "tool_wear_min", "vibration_mm_s"),
    "machine_events": ("machine_id", "state", "started_at"),
}
ENTITY_COLUMNS = ("order_id", "product_id", "line_id", "planned_qty", "shift", "released_at")
SHIFT_CODES = {"A": 0, "B": 1, "C": 2}
DOWN_STATE = "down"

FEATURES: tuple[str, ...] = (
    "planned_qty",
    "shift_code",
    "routing_steps",
    "product_yield_mean",
    "line_recent_residual",
    "wear_mean",
    "wear_max",
    "vibration_mean",
    "vibration_max",
    "torque_mean",
    "downs_recent",
    "op_scrap_share_mean",
    "op_scrap_share_max",
    "main_lot_effect",
    "main_lot_orders",
    "lot_effect_min",
    "lot_effect_mean",
)


@dataclass(frozen=True)
class YieldFeatureConfig:
    """Windows and priors of the yield features (one place, documented, passed in)."""

    condition_readings: int = 12
    """Running sensor readings averaged for vibration and torque (12 = two hours at 10-minute readings)."""
    down_window_hours: float = 7 * 24.0
    """Down events of a machine counted over this window before release."""
    scrap_window_hours: float = 2 * 24.0
    """Operations of a machine that ended within this window before release give its recent scrap share."""
    line_window_hours: float = 3 * 24.0
    """Orders of the line that ended within this window give its recent residual yield."""
    product_prior_orders: float = 5.0
    """Pseudo-orders of the plant mean added to a product's history."""
    lot_prior_orders: float = 2.0
    """Pseudo-orders of an average lot (residual 0) added to a lot's history: the prior for new lots."""
    line_prior_orders: float = 3.0
    """Pseudo-orders of residual 0 added to the line's recent history."""

    def window(self, name: str) -> pd.Timedelta:
        """One of the windows (down, scrap, line) as a Timedelta."""
        return pd.Timedelta(hours=getattr(self, f"{name}_window_hours"))

    def __post_init__(self) -> None:
        if self.condition_readings < 1:
            raise ValueError(f"condition_readings: must be >= 1, got {self.condition_readings}")
        for name in (
            "down_window_hours",
            "scrap_window_hours",
            "line_window_hours",
            "product_prior_orders",
            "lot_prior_orders",
            "line_prior_orders",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")


def check_tables(tables: Mapping[str, pd.DataFrame]) -> None:
    """Raise ValueError naming the table or column when a curated table the features need is missing."""
    for table, columns in REQUIRED_COLUMNS.items():
        if table not in tables:
            raise ValueError(f"{table}: table missing (the yield features need it)")
        missing = [c for c in columns if c not in tables[table].columns]
        if missing:
            raise ValueError(f"{table}: columns missing: {', '.join(missing)}")


def order_entities(orders: pd.DataFrame) -> pd.DataFrame:
    """The release-time view of orders (ENTITY_COLUMNS only), with ``released_at`` as datetime64[ns]."""
    missing = [c for c in ENTITY_COLUMNS if c not in orders.columns]
    if missing:
        raise ValueError(f"orders: columns missing: {', '.join(missing)}")
    out = orders.loc[:, list(ENTITY_COLUMNS)].copy()
    out["released_at"] = pd.to_datetime(out["released_at"])
    if out["released_at"].isna().any():
        raise ValueError("released_at: must be set for every order to forecast (the forecast time)")
    if out["order_id"].duplicated().any():
        raise ValueError("order_id: must be unique among the orders to forecast")
    return out.reset_index(drop=True)


def _routing(operations: pd.DataFrame, entities: pd.DataFrame) -> pd.DataFrame:
    """(order_id, machine_id, released_at) for every planned step of the orders' routings."""
    ops = operations.loc[operations["order_id"].isin(entities["order_id"]), ["order_id", "machine_id"]]
    return ops.merge(entities[["order_id", "released_at"]], on="order_id", how="inner").reset_index(drop=True)


def _latest_readings(sensors: pd.DataFrame, routing: pd.DataFrame, readings: int) -> pd.DataFrame:
    """Per routing step: latest tool wear, and mean vibration and torque of the last running readings."""
    # only the routings' machines: every step below is per machine, and a new order has no routing yet
    mine = sensors["machine_id"].isin(routing["machine_id"].unique())
    s = sensors.loc[mine, ["machine_id", "ts", "speed_rpm", "torque_nm", "tool_wear_min", "vibration_mm_s"]]
    s = s.assign(ts=pd.to_datetime(s["ts"])).dropna(subset=["ts"]).sort_values("ts", kind="stable")
    running = s[s["speed_rpm"] > 0].copy()
    grouped = running.groupby("machine_id", sort=False)
    for col, name in (("vibration_mm_s", "vibration"), ("torque_nm", "torque")):
        running[name] = grouped[col].transform(lambda x: x.rolling(readings, min_periods=1).mean())
    left = routing.reset_index().rename(columns={"index": "_row"}).sort_values("released_at", kind="stable")
    wear = pd.merge_asof(
        left,
        s[["machine_id", "ts", "tool_wear_min"]],
        left_on="released_at",
        right_on="ts",
        by="machine_id",
        allow_exact_matches=False,
    )
    cond = pd.merge_asof(
        left,
        running[["machine_id", "ts", "vibration", "torque"]],
        left_on="released_at",
        right_on="ts",
        by="machine_id",
        allow_exact_matches=False,
    )
    out = pd.DataFrame(index=routing.index, columns=["wear", "vibration", "torque"], dtype="float64")
    out.loc[wear["_row"].to_numpy(), "wear"] = wear["tool_wear_min"].to_numpy(dtype="float64")
    out.loc[cond["_row"].to_numpy(), ["vibration", "torque"]] = cond[["vibration", "torque"]].to_numpy()
    return out


def _downs(events: pd.DataFrame, routing: pd.DataFrame, window: pd.Timedelta) -> pd.Series:
    """Per routing step: down events of the machine that started in the window before release."""
    downs = events.loc[events["state"] == DOWN_STATE, ["machine_id", "started_at"]].copy()
    downs["started_at"] = pd.to_datetime(downs["started_at"])
    return sums_in_window(downs, "machine_id", "started_at", [], routing, "released_at", window)["n"]


def _scrap_share(operations: pd.DataFrame, routing: pd.DataFrame, window: pd.Timedelta) -> pd.Series:
    """Per routing step: scrap / input of the machine's operations that ended in the window before release."""
    done = operations.loc[operations["status"] == "COMPLETED", ["machine_id", "actual_end"]].copy()
    done["actual_end"] = pd.to_datetime(done["actual_end"])
    done["qty_in"] = as_float(operations.loc[done.index, "qty_in"])
    done["qty_scrap"] = as_float(operations.loc[done.index, "qty_scrap"])
    done = done.dropna()
    sums = sums_in_window(
        done, "machine_id", "actual_end", ["qty_in", "qty_scrap"], routing, "released_at", window
    )
    return sums["qty_scrap"] / sums["qty_in"].where(sums["qty_in"] > 0)


def machine_condition(
    tables: Mapping[str, pd.DataFrame], entities: pd.DataFrame, config: YieldFeatureConfig
) -> pd.DataFrame:
    """Condition of each order's routing machines before its release, aggregated per order."""
    routing = _routing(tables["operations"], entities)
    if routing.empty:  # none of the orders is planned on a machine yet (new releases): nothing to aggregate
        return pd.DataFrame(index=entities.index, columns=list(CONDITION_COLUMNS), dtype="float64")
    steps = pd.concat(
        [
            routing,
            _latest_readings(tables["sensor_readings"], routing, config.condition_readings),
            _downs(tables["machine_events"], routing, config.window("down")).rename("downs"),
            _scrap_share(tables["operations"], routing, config.window("scrap")).rename("scrap_share"),
        ],
        axis=1,
    )
    per_order = steps.groupby("order_id").agg(
        routing_steps=("machine_id", "size"),
        wear_mean=("wear", "mean"),
        wear_max=("wear", "max"),
        vibration_mean=("vibration", "mean"),
        vibration_max=("vibration", "max"),
        torque_mean=("torque", "mean"),
        downs_recent=("downs", "sum"),
        op_scrap_share_mean=("scrap_share", "mean"),
        op_scrap_share_max=("scrap_share", "max"),
    )
    return per_order.reindex(entities["order_id"]).set_axis(entities.index)


def _order_lots(consumption: pd.DataFrame, order_ids: pd.Series) -> pd.DataFrame:
    """(order_id, lot_id, main) per distinct lot of the orders; main = the lot of the order's first booking."""
    rows = consumption.loc[
        consumption["order_id"].isin(order_ids), ["consumption_id", "order_id", "lot_id", "consumed_at"]
    ]
    rows = rows.assign(consumed_at=pd.to_datetime(rows["consumed_at"]))
    rows = rows.sort_values(["order_id", "consumed_at", "consumption_id"], kind="stable")
    rows = rows.assign(main=~rows["order_id"].duplicated())
    lots = rows.groupby(["order_id", "lot_id"], sort=False, as_index=False)["main"].max()
    return lots.reset_index(drop=True)


def lot_history(
    tables: Mapping[str, pd.DataFrame],
    entities: pd.DataFrame,
    residuals: pd.DataFrame,
    config: YieldFeatureConfig,
) -> pd.DataFrame:
    """Per order: how its lots did in orders that finished before its release (residual yield, shrunk to 0).

    A lot's effect is the mean residual of past orders that used it as their main lot (the lot that matters
    most), pulled toward 0 by ``lot_prior_orders`` pseudo-orders: a new lot counts as an average lot.
    """
    consumption = tables["material_consumption"]
    past = residuals.loc[residuals["residual"].notna(), ["order_id", "actual_end", "residual"]]
    past_lots = _order_lots(consumption, past["order_id"])
    events = past_lots[past_lots["main"]].merge(past, on="order_id")
    pairs = _order_lots(consumption, entities["order_id"]).merge(
        entities[["order_id", "released_at"]], on="order_id"
    )
    sums = sums_before(events, "lot_id", "actual_end", ["residual"], pairs, "released_at")
    pairs["effect"] = shrunk_mean(sums["residual"], sums["n"], 0.0, config.lot_prior_orders)
    pairs["orders"] = sums["n"]
    main = pairs[pairs["main"]].set_index("order_id")
    per_order = pairs.groupby("order_id").agg(
        lot_effect_min=("effect", "min"), lot_effect_mean=("effect", "mean")
    )
    per_order["main_lot_effect"] = main["effect"]
    per_order["main_lot_orders"] = main["orders"]
    return per_order.reindex(entities["order_id"]).set_axis(entities.index)


def line_recent(entities: pd.DataFrame, residuals: pd.DataFrame, config: YieldFeatureConfig) -> pd.DataFrame:
    """Per order: mean residual yield of the line's orders that ended in the window before release (shrunk)."""
    past = residuals.loc[residuals["residual"].notna(), ["line_id", "actual_end", "residual"]]
    sums = sums_in_window(
        past, "line_id", "actual_end", ["residual"], entities, "released_at", config.window("line")
    )
    return pd.DataFrame(
        {"line_recent_residual": shrunk_mean(sums["residual"], sums["n"], 0.0, config.line_prior_orders)},
        index=entities.index,
    )


CONDITION_COLUMNS = (
    "routing_steps",
    "wear_mean",
    "wear_max",
    "vibration_mean",
    "vibration_max",
    "torque_mean",
    "downs_recent",
    "op_scrap_share_mean",
    "op_scrap_share_max",
)


@dataclass(frozen=True)
class FinishedOrders:
    """The history's finished orders with their yields and residuals: the same for every order asked about, so a
    caller that builds features again and again on the same tables (the service) prepares it once."""

    finished: pd.DataFrame
    residuals: pd.DataFrame


def finished_orders(
    tables: Mapping[str, pd.DataFrame], config: YieldFeatureConfig | None = None
) -> FinishedOrders:
    """The finished orders of ``tables`` (yield known) and their residuals, for :func:`build_yield_features`."""
    config = config or YieldFeatureConfig()
    finished = known_outcomes(tables["production_orders"])
    return FinishedOrders(finished, with_residuals(finished, config.product_prior_orders))


def build_yield_features(
    tables: Mapping[str, pd.DataFrame],
    orders: pd.DataFrame,
    config: YieldFeatureConfig | None = None,
    history: FinishedOrders | None = None,
) -> pd.DataFrame:
    """Features of ``orders`` (one or many) as known at each one's ``released_at``; indexed by order_id.

    Args:
        tables: curated tables (production_orders, operations, material_consumption, sensor_readings,
            machine_events) holding at least everything recorded before the orders' releases; later rows
            are ignored, so the full history can be passed for a backtest.
        orders: the orders to forecast (ENTITY_COLUMNS); their own outcome columns are never read.
        config: windows and priors; defaults when None.
        history: :func:`finished_orders` of these same tables and config, when the caller keeps it (else built).

    Returns:
        One row per order in input order, columns FEATURES (float64; NaN where nothing was known).
    """
    config = config or YieldFeatureConfig()
    check_tables(tables)
    entities = order_entities(orders)
    history = history or finished_orders(tables, config)
    finished, residuals = history.finished, history.residuals
    parts = [
        pd.DataFrame(
            {
                "planned_qty": as_float(entities["planned_qty"]),
                "shift_code": entities["shift"].map(SHIFT_CODES).astype("float64"),
            },
            index=entities.index,
        ),
        product_yield_as_of(finished, entities, "released_at", config.product_prior_orders)[
            ["product_yield_mean"]
        ],
        line_recent(entities, residuals, config),
        machine_condition(tables, entities, config),
        lot_history(tables, entities, residuals, config),
    ]
    features = pd.concat(parts, axis=1)[list(FEATURES)].astype("float64")
    return features.set_axis(pd.Index(entities["order_id"], name="order_id"))
