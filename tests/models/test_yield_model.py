"""Yield forecaster: beats the product-mean baseline, reacts the right way to lots and machine condition."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from models.evaluation import EvaluationReport
from models.order_yield import (
    ProductMeanBaseline,
    YieldForecaster,
    YieldModelConfig,
    split_rows,
    train_and_evaluate,
    training_rows,
)
from models.yield_features import build_yield_features
from pipelines.simulator import SimulationConfig, simulate

LOT_COLUMNS = ["main_lot_effect", "lot_effect_min", "lot_effect_mean"]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return simulate(SimulationConfig(seed=7, days=90, lines=2, machines_per_line=6)).tables


@pytest.fixture(scope="module")
def trained(tables: dict[str, pd.DataFrame]) -> tuple[YieldForecaster, EvaluationReport]:
    return train_and_evaluate(tables)


@pytest.fixture(scope="module")
def test_rows(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return split_rows(training_rows(tables), YieldModelConfig()).test


def test_beats_the_product_mean_baseline(trained: tuple[YieldForecaster, EvaluationReport]) -> None:
    _, report = trained
    assert report.task == "yield"
    assert report.baseline.metric == "mae_fraction"
    assert report.baseline.beats_baseline
    assert report.baseline.ratio < 0.97
    assert report.metrics["mae_units"] < report.metrics["baseline_mae_units"]


def test_report_has_time_ordered_split_and_slices(trained: tuple[YieldForecaster, EvaluationReport]) -> None:
    _, report = trained
    assert report.split["train_start"] < report.split["validation_start"] < report.split["test_start"]
    assert min(report.rows.values()) > 50
    for dimension in ("line", "product"):
        slices = [s for s in report.slices if s.dimension == dimension]
        assert sum(s.rows for s in slices) == report.rows["test"]
        assert all({"mae_fraction", "baseline_mae_fraction"} <= s.metrics.keys() for s in slices)


def test_worse_lot_history_lowers_the_forecast(
    trained: tuple[YieldForecaster, EvaluationReport], test_rows: pd.DataFrame
) -> None:
    forecaster, _ = trained
    worse = test_rows.assign(**{c: test_rows[c] - 0.05 for c in LOT_COLUMNS})
    change = forecaster.predict(worse) - forecaster.predict(test_rows)
    assert (change <= 0).all()
    assert change.mean() < -0.01


def test_more_tool_wear_and_vibration_lower_the_forecast(
    trained: tuple[YieldForecaster, EvaluationReport], test_rows: pd.DataFrame
) -> None:
    forecaster, _ = trained
    base = forecaster.predict(test_rows)
    worn = test_rows.assign(wear_mean=test_rows["wear_mean"] + 80, wear_max=test_rows["wear_max"] + 80)
    wear_change = forecaster.predict(worn) - base
    assert (wear_change <= 0).all() and wear_change.mean() < 0
    shaky = test_rows.assign(
        vibration_mean=test_rows["vibration_mean"] + 1.0, vibration_max=test_rows["vibration_max"] + 1.0
    )
    assert (forecaster.predict(shaky) - base).mean() < -0.005


def test_worn_tools_in_the_sensor_history_lower_one_served_forecast(
    trained: tuple[YieldForecaster, EvaluationReport], tables: dict[str, pd.DataFrame]
) -> None:
    """End to end through the feature function: raise the routing machines' wear readings before release."""
    forecaster, _ = trained
    orders = tables["production_orders"]
    order = orders[orders["status"] == "CLOSED"].iloc[-50:-49]
    machines = tables["operations"].loc[
        tables["operations"]["order_id"] == order["order_id"].iloc[0], "machine_id"
    ]
    sensors = tables["sensor_readings"]
    hit = sensors["machine_id"].isin(machines) & (sensors["ts"] < order["released_at"].iloc[0])
    worn = sensors.assign(tool_wear_min=sensors["tool_wear_min"].where(~hit, 240.0))
    before = forecaster.predict(build_yield_features(tables, order)).iloc[0]
    after = forecaster.predict(build_yield_features(tables | {"sensor_readings": worn}, order)).iloc[0]
    assert after <= before


def test_good_quantity_is_fraction_times_planned(
    trained: tuple[YieldForecaster, EvaluationReport], test_rows: pd.DataFrame
) -> None:
    forecaster, _ = trained
    fraction = forecaster.predict(test_rows)
    assert ((fraction >= 0) & (fraction <= 1)).all()
    np.testing.assert_allclose(forecaster.predict_good_qty(test_rows), fraction * test_rows["planned_qty"])


def test_pickled_forecaster_predicts_the_same(
    trained: tuple[YieldForecaster, EvaluationReport], test_rows: pd.DataFrame
) -> None:
    forecaster, _ = trained
    again = pickle.loads(pickle.dumps(forecaster))
    pd.testing.assert_series_equal(again.predict(test_rows), forecaster.predict(test_rows))


def test_baseline_falls_back_to_the_plant_mean_for_a_new_product() -> None:
    rows = pd.DataFrame({"product_id": ["P-101", "P-101", "P-102"], "yield_fraction": [0.8, 0.9, 0.5]})
    baseline = ProductMeanBaseline().fit(rows)
    new = pd.DataFrame({"product_id": ["P-101", "P-999"]})
    np.testing.assert_allclose(baseline.predict(new), [0.85, 2.2 / 3])


def test_predict_before_fit_and_missing_features_are_clear_errors(
    trained: tuple[YieldForecaster, EvaluationReport], test_rows: pd.DataFrame
) -> None:
    with pytest.raises(RuntimeError, match="fit before predict"):
        YieldForecaster().predict(test_rows)
    with pytest.raises(ValueError, match="features: columns missing: wear_max"):
        trained[0].predict(test_rows.drop(columns=["wear_max"]))


def test_records_path_matches_the_frame_path(
    trained: tuple[YieldForecaster, EvaluationReport], test_rows: pd.DataFrame
) -> None:
    forecaster, _ = trained
    rows = test_rows.head(40)[forecaster.features].copy()
    rows.iloc[0, rows.columns.get_loc("product_yield_mean")] = np.nan  # falls back to the plant mean
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    np.testing.assert_allclose(forecaster.predict_records(records), forecaster.predict(rows).to_numpy())
