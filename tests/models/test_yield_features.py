"""Yield features: strict as-of history, no look-ahead, one-row = many-row, lots scored against hidden truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.yield_features import FEATURES, build_yield_features, check_tables
from models.yield_history import known_outcomes, shrunk_mean, sums_before, sums_in_window
from pipelines.simulator import PlantHistory, SimulationConfig, simulate

FEATURE_TABLES = (
    "production_orders",
    "operations",
    "material_consumption",
    "sensor_readings",
    "machine_events",
)


@pytest.fixture(scope="module")
def history() -> PlantHistory:
    return simulate(SimulationConfig(seed=11, days=45, lines=2, machines_per_line=6))


@pytest.fixture(scope="module")
def tables(history: PlantHistory) -> dict[str, pd.DataFrame]:
    return {name: history.tables[name] for name in FEATURE_TABLES}


def as_of(tables: dict[str, pd.DataFrame], t: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """What an MES would hold at t: released orders only, outcomes and operation results only once ended."""
    orders = tables["production_orders"]
    orders = orders[orders["released_at"] <= t].copy()
    open_ = ~(orders["actual_end"] < t)
    orders.loc[open_, ["started_qty", "good_qty", "scrap_qty"]] = pd.NA
    orders.loc[open_, "actual_end"] = pd.NaT
    orders.loc[open_ & (orders["status"] != "CANCELLED"), "status"] = "RELEASED"
    ops = tables["operations"]
    ops = ops[ops["order_id"].isin(orders["order_id"])].copy()
    running = ~(ops["actual_end"] < t)
    ops.loc[running, ["qty_good", "qty_scrap"]] = pd.NA
    ops.loc[running, "actual_end"] = pd.NaT
    ops.loc[running, "status"] = "PLANNED"
    consumption = tables["material_consumption"]
    events = tables["machine_events"]
    events = events[events["started_at"] < t].copy()
    events.loc[~(events["ended_at"] < t), "ended_at"] = pd.NaT
    sensors = tables["sensor_readings"]
    return {
        "production_orders": orders,
        "operations": ops,
        # an MES assigns lots at release: the bookings of every released order are known
        "material_consumption": consumption[consumption["order_id"].isin(orders["order_id"])],
        "sensor_readings": sensors[sensors["ts"] < t],
        "machine_events": events,
    }


def test_sums_before_is_strict_and_windowed() -> None:
    events = pd.DataFrame(
        {
            "k": ["a", "a", "a", "b"],
            "at": pd.to_datetime(
                ["2025-01-01 00:00", "2025-01-01 06:00", "2025-01-01 12:00", "2025-01-01 00:00"]
            ),
            "v": [1.0, 2.0, 4.0, 8.0],
        }
    )
    queries = pd.DataFrame({"k": ["a", "a", "b", "c"], "t": pd.to_datetime(["2025-01-01 12:00"] * 4)})
    before = sums_before(events, "k", "at", ["v"], queries, "t")
    assert before["v"].tolist() == [3.0, 3.0, 8.0, 0.0]  # the event at exactly t is not yet known
    assert before["n"].tolist() == [2.0, 2.0, 1.0, 0.0]
    recent = sums_in_window(events, "k", "at", ["v"], queries, "t", pd.Timedelta(hours=7))
    assert recent["v"].tolist() == [2.0, 2.0, 0.0, 0.0]


def test_shrunk_mean_gives_a_new_lot_the_prior() -> None:
    total, count = pd.Series([0.0, -0.3]), pd.Series([0.0, 3.0])
    assert shrunk_mean(total, count, 0.0, 2.0).tolist() == [0.0, pytest.approx(-0.06)]


def test_known_outcomes_keeps_only_finished_orders_with_quantities() -> None:
    orders = pd.DataFrame(
        {
            "status": ["CLOSED", "COMPLETED", "IN_PROGRESS", "CANCELLED", "COMPLETED"],
            "started_qty": pd.array([100, 50, 80, None, 0], dtype="Int64"),
            "good_qty": pd.array([90, 40, None, None, 0], dtype="Int64"),
            "actual_end": pd.to_datetime(["2025-01-02", "2025-01-03", None, None, "2025-01-03"]),
        }
    )
    out = known_outcomes(orders)
    assert out["yield_fraction"].tolist() == [0.9, 0.8]


def test_missing_table_or_column_is_named(tables: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="sensor_readings: table missing"):
        check_tables({k: v for k, v in tables.items() if k != "sensor_readings"})
    broken = tables | {"operations": tables["operations"].drop(columns=["machine_id"])}
    with pytest.raises(ValueError, match="operations: columns missing: machine_id"):
        check_tables(broken)


def test_features_have_every_column_and_one_row_per_order(tables: dict[str, pd.DataFrame]) -> None:
    orders = tables["production_orders"]
    features = build_yield_features(tables, orders)
    assert list(features.columns) == list(FEATURES)
    assert features.index.tolist() == orders["order_id"].tolist()
    late = features.iloc[len(features) // 2 :]
    # past the first days every order has machine condition and product history
    assert late[["wear_max", "vibration_mean", "product_yield_mean"]].notna().all().all()


def test_no_look_ahead_features_equal_those_from_the_tables_as_of_release(
    tables: dict[str, pd.DataFrame],
) -> None:
    orders = tables["production_orders"]
    full = build_yield_features(tables, orders)
    picked = orders.iloc[np.linspace(len(orders) // 4, len(orders) - 5, 12).astype(int)]
    for _, order in picked.iterrows():
        snapshot = as_of(tables, order["released_at"])
        one = build_yield_features(snapshot, order.to_frame().T)
        pd.testing.assert_frame_equal(one, full.loc[[order["order_id"]]], check_exact=False, rtol=1e-9)


def test_own_outcome_is_never_read(tables: dict[str, pd.DataFrame]) -> None:
    orders = tables["production_orders"]
    target = orders[orders["status"] == "CLOSED"].iloc[len(orders) // 2]
    changed = orders.copy()
    changed.loc[changed["order_id"] == target["order_id"], ["good_qty", "scrap_qty"]] = [
        0,
        target["started_qty"],
    ]
    entity = orders[orders["order_id"] == target["order_id"]]
    before = build_yield_features(tables, entity)
    after = build_yield_features(tables | {"production_orders": changed}, entity)
    pd.testing.assert_frame_equal(before, after)


def test_one_order_gets_the_same_features_alone_as_in_a_batch(tables: dict[str, pd.DataFrame]) -> None:
    orders = tables["production_orders"]
    batch = build_yield_features(tables, orders.iloc[300:340])
    for i in (300, 317, 339):
        alone = build_yield_features(tables, orders.iloc[[i]])
        pd.testing.assert_frame_equal(alone, batch.loc[[orders["order_id"].iloc[i]]])


def test_curated_dtypes_give_the_same_features(tables: dict[str, pd.DataFrame]) -> None:
    orders = tables["production_orders"]
    curated = orders.astype({"planned_qty": "Int64"})
    pd.testing.assert_frame_equal(
        build_yield_features(tables | {"production_orders": curated}, curated.iloc[200:260]),
        build_yield_features(tables, orders.iloc[200:260]),
    )


def test_lot_effect_tracks_hidden_lot_quality(history: PlantHistory, tables: dict[str, pd.DataFrame]) -> None:
    """The hidden quality is used here only to check the feature, never as one."""
    features = build_yield_features(tables, tables["production_orders"])
    consumption = tables["material_consumption"].sort_values(["order_id", "consumed_at", "consumption_id"])
    main_lot = consumption.drop_duplicates("order_id").set_index("order_id")["lot_id"]
    quality = main_lot.map(history.lots.set_index("lot_id")["quality"])
    with_history = features[features["main_lot_orders"] > 0]
    assert len(with_history) > 30
    assert (features.loc[features["main_lot_orders"] == 0, "main_lot_effect"] == 0).all()
    corr = np.corrcoef(with_history["main_lot_effect"], quality.loc[with_history.index])[0, 1]
    assert corr > 0.4
