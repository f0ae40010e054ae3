"""The service's feature context: an ingested order's features are built once, equal to building them alone."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from models.yield_features import ENTITY_COLUMNS, build_yield_features
from pipelines.simulator import SimulationConfig, simulate
from serving.context import CONTEXT_TABLES, FeatureContext, _features_as_dicts, _naive_utc_orders


@pytest.fixture(scope="module")
def context() -> FeatureContext:
    history = simulate(SimulationConfig(seed=11, days=30, lines=1, machines_per_line=4))
    return FeatureContext({name: history.tables[name] for name in CONTEXT_TABLES}, signature=())


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(
        (x is None and y is None) or (x is not None and y is not None and math.isclose(x, y, abs_tol=1e-12))
        for x, y in ((a[k], b[k]) for k in a)
    )


def test_every_ingested_order_has_features_equal_to_building_it_alone(context: FeatureContext) -> None:
    orders = context.tables["production_orders"]
    assert len(context._order_features) == orders["order_id"].nunique() > 50
    for order_id in orders["order_id"].iloc[:: max(1, len(orders) // 15)]:
        header = context.order_header(order_id)
        alone = _features_as_dicts(build_yield_features(context.tables, _naive_utc_orders([header])))[0]
        assert _same(context.yield_features(header), alone), order_id


def test_a_header_sent_by_the_mes_is_built_from_it_not_from_the_ingested_order(
    context: FeatureContext,
) -> None:
    order_id = context.tables["production_orders"]["order_id"].iloc[-1]
    header = context.order_header(order_id)
    bigger = {**header, "planned_qty": float(header["planned_qty"]) * 3}
    sent = context.yield_features(bigger)
    assert sent["planned_qty"] == pytest.approx(bigger["planned_qty"])
    assert sent["planned_qty"] != pytest.approx(context.yield_features(header)["planned_qty"])
    new = {**header, "order_id": "WO-NEW-1", "released_at": pd.Timestamp(header["released_at"], tz="UTC")}
    assert set(new) == set(ENTITY_COLUMNS) and "WO-NEW-1" not in context._order_features
    built = context.yield_features(new)  # not ingested: built on request from the same history
    assert built.keys() == sent.keys() and built["product_yield_mean"] == sent["product_yield_mean"]
