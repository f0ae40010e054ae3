"""Failure forecaster: calibration and threshold units, behaviour on the simulator, and its minimum quality."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from models.failure import (
    LABEL,
    FailureForecaster,
    FailureModelParams,
    failure_dataset,
    train_failure_forecaster,
)
from models.failure_features import feature_names
from models.failure_metrics import (
    ProbabilityCalibrator,
    brier,
    choose_threshold,
    decision_metrics,
    reliability_bins,
)
from models.splits import split_by_time
from pipelines.simulator import SimulationConfig, simulate

NAMES = feature_names()


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Four months of two lines with six machines each (about 4,200 forecast rows)."""
    return simulate(SimulationConfig(seed=1, days=120, lines=2, machines_per_line=6)).tables


@pytest.fixture(scope="module")
def trained(tables):
    """The forecaster trained and evaluated on the fixture plant."""
    return train_failure_forecaster(tables)


# --- units: thresholds, calibration, reliability ---------------------------------------------------------------


def test_max_f1_threshold() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.9])
    # alarms at >= 0.4 catch all three failures with one false alarm: F1 = 6/7, the best cut
    assert choose_threshold(y, p) == pytest.approx(0.4)
    assert decision_metrics(y, p, 0.4)["recall_at_threshold"] == 1.0


def test_cost_threshold_moves_down_when_misses_cost_more() -> None:
    y = np.array([0, 1, 0, 0, 1, 0, 1, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.8, 0.9])
    cheap = choose_threshold(y, p, miss_cost=1.0)
    dear = choose_threshold(y, p, miss_cost=20.0)
    assert dear < cheap
    assert dear == pytest.approx(0.1)  # catching every failure is worth four false alarms


def test_threshold_needs_a_failure() -> None:
    with pytest.raises(ValueError, match="no failures"):
        choose_threshold(np.zeros(5), np.linspace(0, 1, 5))


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_repairs_overconfident_scores(method: str) -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.0, 0.3, 20_000)
    y = (rng.uniform(size=truth.size) < truth).astype(int)
    overconfident = np.clip(truth * 3, 0, 0.99)
    calibrator = ProbabilityCalibrator(method).fit(overconfident[:10_000], y[:10_000])
    fixed = calibrator.transform(overconfident[10_000:])
    assert brier(y[10_000:], fixed) < brier(y[10_000:], overconfident[10_000:]) - 0.01
    assert abs(fixed.mean() - y[10_000:].mean()) < 0.01


def test_unknown_calibration_method_is_named() -> None:
    with pytest.raises(ValueError, match="calibration"):
        ProbabilityCalibrator("beta")  # type: ignore[arg-type]


def test_reliability_bins_report_observed_rates() -> None:
    p = np.array([0.05, 0.05, 0.15, 0.95, 0.95])
    y = np.array([0, 1, 0, 1, 1])
    bins = reliability_bins(y, p, bins=10)
    assert bins["bin_lower"] == pytest.approx([0.0, 0.1, 0.9])
    assert bins["bin_observed_rate"] == [0.5, 0.0, 1.0]
    assert bins["bin_rows"] == [2.0, 1.0, 2.0]


# --- the forecaster on the simulator ---------------------------------------------------------------------------


def test_beats_the_better_baseline_on_the_simulator(trained) -> None:
    _, report = trained
    assert report.baseline.metric == "pr_auc"
    assert report.baseline.beats_baseline
    assert report.baseline.ratio > 1.3
    assert report.baseline.baseline_value >= report.metrics["baseline_prevalence_pr_auc"]
    assert report.metrics["roc_auc"] > 0.65


def test_report_is_complete(trained) -> None:
    forecaster, report = trained
    assert report.task == "failure" and report.dataset == "simulator"
    assert report.features == NAMES
    assert {s.dimension for s in report.slices} == {"line_id", "machine_id"}
    assert sum(s.rows for s in report.slices if s.dimension == "line_id") == report.rows["test"]
    assert {"brier", "bin_observed_rate", "expected_calibration_error"} <= set(report.calibration)
    assert report.threshold == forecaster.threshold
    assert "validation" in report.split["threshold"]
    assert pd.Timestamp(report.split["validation_start"]) < pd.Timestamp(report.split["test_start"])
    report.model_dump_json()  # JSON-ready: no NaN or numpy scalars in the way


def test_calibration_beats_the_prevalence_brier(trained) -> None:
    _, report = trained
    assert report.calibration["brier"] < report.calibration["brier_prevalence"]


def test_threshold_is_chosen_on_validation_only(tables, trained) -> None:
    forecaster, _ = trained
    data = failure_dataset(tables)
    split = split_by_time(data, "forecast_at")
    validation_p = forecaster.predict_proba(split.validation[NAMES])
    assert forecaster.threshold == choose_threshold(split.validation[LABEL], validation_p)


def test_more_tool_wear_means_higher_risk(tables, trained) -> None:
    forecaster, _ = trained
    rows = failure_dataset(tables)
    running = rows[rows["running_share_1h"] > 0][NAMES]
    risk = []
    for wear in (20.0, 120.0, 230.0):
        shifted = running.copy()
        for column in [c for c in NAMES if c.startswith("tool_wear_min_") and "slope" not in c]:
            shifted[column] = wear
        for column in [c for c in NAMES if c.startswith("strain_minnm_") and "slope" not in c]:
            shifted[column] = wear * shifted[column.replace("strain_minnm", "torque_nm")]
        risk.append(forecaster.predict_proba(shifted).mean())
    assert risk[0] < risk[2] and risk[1] < risk[2]


def test_more_vibration_means_higher_risk(tables, trained) -> None:
    forecaster, _ = trained
    rows = failure_dataset(tables)[NAMES]
    vibration = [c for c in NAMES if c.startswith("vibration_mm_s_") and "slope" not in c]
    low, high = rows.copy(), rows.copy()
    low[vibration], high[vibration] = 1.5, 6.0
    assert forecaster.predict_proba(high).mean() > 1.5 * forecaster.predict_proba(low).mean()


def test_pickled_forecaster_predicts_the_same(tables, trained) -> None:
    forecaster, _ = trained
    rows = failure_dataset(tables).tail(50)[NAMES]
    again = pickle.loads(pickle.dumps(forecaster))
    np.testing.assert_array_equal(again.predict_proba(rows), forecaster.predict_proba(rows))
    np.testing.assert_array_equal(again.predict(rows), forecaster.predict(rows))


def test_training_is_deterministic(tables) -> None:
    data = failure_dataset(tables)
    split = split_by_time(data, "forecast_at")
    params = FailureModelParams(n_estimators=50)
    a, b = (
        FailureForecaster(params).fit(
            split.train[NAMES], split.train[LABEL], split.validation[NAMES], split.validation[LABEL]
        )
        for _ in range(2)
    )
    np.testing.assert_array_equal(a.raw_score(split.test[NAMES]), b.raw_score(split.test[NAMES]))


def test_unseen_category_and_missing_column() -> None:
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"wear": rng.uniform(0, 250, 400), "kind": rng.choice(["a", "b"], 400)})
    y = pd.Series((x["wear"] + rng.normal(0, 40, 400) > 200).astype(int))
    model = FailureForecaster(FailureModelParams(rule_column="wear", n_estimators=20, min_child_samples=5))
    model.fit(x[:300], y[:300], x[300:], y[300:])
    unseen = x.head(3).assign(kind="z")
    assert np.isfinite(model.predict_proba(unseen)).all()
    with pytest.raises(ValueError, match=r"missing column.*kind"):
        model.predict_proba(x.drop(columns="kind"))


def test_one_class_training_labels_are_rejected() -> None:
    x = pd.DataFrame({"tool_wear_min_last": np.arange(10.0)})
    with pytest.raises(ValueError, match="train labels: need both"):
        FailureForecaster().fit(x, pd.Series(np.zeros(10, dtype=int)), x, pd.Series([0, 1] * 5))


def test_records_path_matches_the_frame_path(tables, trained) -> None:
    forecaster, _ = trained
    rows = failure_dataset(tables).tail(40)[NAMES]
    # an unseen category is missing, as in the frame path
    rows.iloc[3, rows.columns.get_loc("machine_type")] = "never-seen"
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    np.testing.assert_allclose(forecaster.predict_proba_records(records), forecaster.predict_proba(rows))


def test_platt_transform_equals_the_logistic_regression(trained) -> None:
    forecaster, _ = trained
    scores = np.linspace(0.001, 0.999, 50)
    model = forecaster.calibrator._model
    expected = model.predict_proba(np.log(scores / (1 - scores))[:, None])[:, 1]
    np.testing.assert_allclose(forecaster.calibrator.transform(scores), expected, rtol=1e-12)
