"""Drift reports: Evidently's verdicts per feature and on the prediction, the served rows a version produced,
the reference checked against its lineage hash, saved and recorded reports."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from governance.drift import (
    EMPTY_ON_ONE_SIDE,
    DriftError,
    DriftResult,
    FeatureDrift,
    compare,
    history,
    latest,
    reference_features,
    run_drift_report,
    served_features,
)
from governance.lineage import (
    DatasetFingerprint,
    Lineage,
    ReferenceSample,
    baseline_summary,
    reference_parquet,
)
from governance.registry import Registry
from mesops import database
from mesops.serving_tables import PredictionLogEntry
from mesops.settings import Settings, get_settings
from models.evaluation import BaselineComparison, EvaluationReport

MODEL = "mesops-yield"
FEATURES = ["load", "wear", "machine"]
UNTIL = datetime(2026, 3, 8, tzinfo=UTC)


def sample(rows: int, seed: int, *, wear_shift: float = 0.0, prediction_shift: float = 0.0) -> pd.DataFrame:
    """Rows of two numeric features, one categorical and a prediction; shifts move one column's mean."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "load": rng.normal(50.0, 10.0, rows),
            "wear": rng.normal(100.0, 20.0, rows) + wear_shift,
            "machine": rng.choice(["M-01", "M-02", "M-03"], rows, p=[0.5, 0.3, 0.2]),
            "prediction": np.clip(rng.normal(0.9, 0.03, rows) + prediction_shift, 0.0, 1.0),
        }
    )


REFERENCE = sample(2000, seed=1)


# --- compare: Evidently's verdicts ---------------------------------------------------------------------------
def test_same_distribution_shows_no_drift() -> None:
    features, prediction, snapshot = compare(REFERENCE, sample(1000, seed=2), FEATURES)
    assert [f.feature for f in features] == FEATURES
    assert not any(f.drifted for f in features)
    assert prediction is not None and not prediction.drifted
    for drift in features:  # distances below their threshold: Evidently's verdict and the documented rule
        assert drift.method and 0 <= drift.score < drift.threshold
    assert snapshot is not None


def test_a_shifted_feature_is_named_and_counted() -> None:
    features, prediction, _ = compare(REFERENCE, sample(1000, seed=2, wear_shift=15.0), FEATURES)
    drifted = [f for f in features if f.drifted]
    assert [f.feature for f in drifted] == ["wear"]
    assert drifted[0].score >= drifted[0].threshold
    assert "Wasserstein" in drifted[0].method  # numeric column, more than 1,000 reference rows
    assert prediction is not None and not prediction.drifted


def test_prediction_drift_is_detected_apart_from_the_features() -> None:
    features, prediction, _ = compare(REFERENCE, sample(1000, seed=2, prediction_shift=-0.05), FEATURES)
    assert not any(f.drifted for f in features)
    assert prediction is not None and prediction.feature == "prediction" and prediction.drifted


def test_small_samples_get_p_value_tests_judged_below_their_threshold() -> None:
    # up to 1,000 reference rows Evidently tests numbers with K-S and categories with chi-square (p-values)
    features, _, _ = compare(sample(500, seed=1), sample(400, seed=2, wear_shift=15.0), FEATURES)
    by_name = {f.feature: f for f in features}
    assert "p_value" in by_name["wear"].method and by_name["wear"].score < by_name["wear"].threshold
    assert by_name["wear"].drifted
    assert "p_value" in by_name["load"].method and not by_name["load"].drifted


def test_a_feature_missing_on_one_side_counts_as_drifted() -> None:
    current = sample(1000, seed=2).assign(wear=np.nan)
    features, _, _ = compare(REFERENCE, current.drop(columns=["load"]), FEATURES)
    by_name = {f.feature: f for f in features}
    assert by_name["wear"].drifted and by_name["wear"].method == EMPTY_ON_ONE_SIDE
    assert by_name["load"].drifted  # not logged at all
    assert not by_name["machine"].drifted


def _result(features: list[FeatureDrift]) -> DriftResult:
    return DriftResult(
        model_name=MODEL,
        version="1",
        window_start=UNTIL - timedelta(days=7),
        window_end=UNTIL,
        reference_rows=2000,
        current_rows=500,
        features=features,
        share_drifted=sum(f.drifted for f in features) / len(features),
        drifted_features=[f.feature for f in features if f.drifted],
        prediction=None,
        html_path=None,
        json_path=None,
        computed_at=UNTIL,
    )


def test_severity_grows_with_how_far_the_worst_feature_moved() -> None:
    results = {
        shift: _result(compare(REFERENCE, sample(1000, seed=2, wear_shift=shift), FEATURES)[0])
        for shift in (0.0, 5.0, 40.0)
    }
    severity = {shift: result.severity for shift, result in results.items()}
    assert severity[0.0][0] < 1.0  # nothing beyond its threshold
    assert severity[5.0][1] == severity[40.0][1] == "wear"
    assert 1.0 <= severity[5.0][0] < severity[40.0][0]  # a quarter std, then two: about 2.5 and 20
    assert severity[40.0][0] > 10.0
    summary = results[40.0].summary()
    assert (summary.severity, summary.worst_feature, summary.rows) == (severity[40.0][0], "wear", 500)


def test_severity_leaves_out_p_value_tests_and_untestable_columns() -> None:
    p_value = FeatureDrift(feature="a", method="K-S p_value", score=1e-9, threshold=0.05, drifted=True)
    missing = FeatureDrift(feature="b", method=EMPTY_ON_ONE_SIDE, score=1.0, threshold=1.0, drifted=True)
    assert _result([p_value, missing]).severity == (0.0, None)
    distance = FeatureDrift(
        feature="c", method="Jensen-Shannon distance", score=0.3, threshold=0.1, drifted=True
    )
    assert _result([p_value, missing, distance]).severity == (pytest.approx(3.0), "c")


def test_a_column_the_reference_lacks_is_named() -> None:
    with pytest.raises(DriftError, match="reference: no column"):
        compare(REFERENCE.drop(columns=["wear"]), sample(100, seed=2), FEATURES)


# --- served rows ---------------------------------------------------------------------------------------------
def log_row(
    created_at: datetime,
    *,
    answered_by: str = "champion",
    champion: str = "1",
    challenger: str | None = None,
    champion_output: dict | None = None,
    challenger_output: dict | None = None,
    features: dict | None = None,
    model: str = MODEL,
) -> PredictionLogEntry:
    return PredictionLogEntry(
        request_id=uuid.uuid4().hex,
        created_at=created_at,
        endpoint="/v1/yield/forecast",
        model_name=model,
        phase="shadow" if challenger else "none",
        entity_id="WO-1",
        correlation_id="WO-1",
        answered_by=answered_by,
        answered_version=champion if answered_by == "champion" else (challenger or ""),
        champion_version=champion,
        challenger_version=challenger,
        features=features or {},
        champion_output=champion_output,
        challenger_output=challenger_output,
        recommendation_id=None,
        status="ok",
        latency_ms=1.0,
    )


def test_served_features_are_the_rows_the_version_produced(settings: Settings) -> None:
    url = settings.resolved_database_url
    database.upgrade(url)
    t = UNTIL - timedelta(days=1)
    rows = [
        # champion 1 answers, challenger 2 scored in shadow
        log_row(
            t,
            challenger="2",
            champion_output={"yield_fraction": 0.91},
            challenger_output={"yield_fraction": 0.81},
            features={"row": "a"},
        ),
        # the shadow score failed: a row of version 1 only
        log_row(
            t,
            challenger="2",
            champion_output={"yield_fraction": 0.92},
            challenger_output={"error": "ValueError: x"},
            features={"row": "b"},
        ),
        # challenger 2 answered (approval); 1 was scored inline but did not answer
        log_row(
            t,
            answered_by="challenger",
            challenger="2",
            champion_output={"yield_fraction": 0.93},
            challenger_output={"yield_fraction": 0.83},
            features={"row": "c"},
        ),
        # champion 1 alone
        log_row(t, champion_output={"yield_fraction": 0.94}, features={"row": "d"}),
        # outside the window, at both ends, and another model
        log_row(UNTIL, champion_output={"yield_fraction": 0.5}, features={"row": "late"}),
        log_row(
            UNTIL - timedelta(days=8), champion_output={"yield_fraction": 0.5}, features={"row": "early"}
        ),
        log_row(t, model="mesops-failure", champion_output={"probability": 0.1}, features={"row": "other"}),
    ]
    with database.session_scope(url) as session:
        session.add_all(rows)
    since = UNTIL - timedelta(days=7)
    one = served_features(url, MODEL, "1", since, UNTIL)
    assert one.to_dict("records") == [
        {"row": "a", "prediction": 0.91},
        {"row": "b", "prediction": 0.92},
        {"row": "d", "prediction": 0.94},
    ]
    two = served_features(url, MODEL, "2", since, UNTIL)
    assert two.to_dict("records") == [{"row": "a", "prediction": 0.81}, {"row": "c", "prediction": 0.83}]
    assert served_features(url, MODEL, "3", since, UNTIL).empty
    with pytest.raises(ValueError, match="since: must be timezone-aware"):
        served_features(url, MODEL, "1", since.replace(tzinfo=None), UNTIL)


# --- the report on a registered version ------------------------------------------------------------------------
class ShareForecaster:
    """A picklable stand-in forecaster."""

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.full(len(features), 0.9)


def _report() -> EvaluationReport:
    return EvaluationReport(
        task="yield",
        dataset="simulator",
        split={"train_start": "2026-01-01"},
        rows={"train": 2000},
        features=FEATURES,
        metrics={"mae_fraction": 0.02},
        baseline=BaselineComparison(
            metric="mae_fraction",
            higher_is_better=False,
            model_value=0.02,
            baseline_name="product mean",
            baseline_value=0.03,
        ),
    )


def _register(registry: Registry, reference: pd.DataFrame | None) -> str:
    report = _report()
    lineage = Lineage(
        contracts=["production_orders@1.0.0"],
        datasets={
            "production_orders": DatasetFingerprint.of(reference if reference is not None else REFERENCE, [])
        },
        attestations=["a" * 64],
        training_window={"train_start": "2026-01-01"},
        dagster_run_id="run-1",
        code_version="abc",
        baseline=baseline_summary(report.baseline),
    )
    data = None
    if reference is not None:
        data = reference_parquet(reference)
        record = ReferenceSample.of(
            data, rows=len(reference), seed=0, split="train", source_rows=len(reference), features=FEATURES
        )
        lineage = lineage.model_copy(update={"reference": record})
    example = REFERENCE[FEATURES].head(3)
    return registry.register("yield", ShareForecaster(), report, lineage, {}, example, reference=data).version


@dataclass
class Installation:
    settings: Settings
    registry: Registry
    with_reference: str
    without_reference: str
    tampered: str


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """A registry with three versions (a reference; none; an altered one) and a week of served rows of the first."""
    home = tmp_path_factory.mktemp("drift") / "home"
    settings = get_settings(
        home=home, database_url=f"sqlite:///{home / 'platform.db'}", mlflow_tracking_uri=None
    )
    url = settings.resolved_database_url
    database.upgrade(url)
    registry = Registry.from_settings(settings)
    good = _register(registry, REFERENCE)
    old = _register(registry, None)
    tampered = _register(registry, REFERENCE)
    run = registry.client.get_run(registry.version(MODEL, tampered).run_id)
    artifact = Path(run.info.artifact_uri.removeprefix("file://")) / "reference" / "features.parquet"
    artifact.write_bytes(reference_parquet(REFERENCE.head(100)))
    served = sample(1000, seed=2, wear_shift=15.0)
    start = UNTIL - timedelta(days=7)
    with database.session_scope(url) as session:
        session.add_all(
            log_row(
                start + timedelta(minutes=9 * i + 1),
                champion=good,
                features={k: (v.item() if hasattr(v, "item") else v) for k, v in row[FEATURES].items()},
                champion_output={"yield_fraction": float(row["prediction"])},
            )
            for i, (_, row) in enumerate(served.iterrows())
        )
    return Installation(settings, registry, good, old, tampered)


def test_report_names_the_drifted_feature_saves_and_records_it(installation: Installation) -> None:
    settings = installation.settings
    result = run_drift_report(settings, MODEL, installation.with_reference, until=UNTIL, window_days=7)
    assert (result.reference_rows, result.current_rows) == (2000, 1000)
    assert (result.window_start, result.window_end) == (UNTIL - timedelta(days=7), UNTIL)
    assert result.drifted_features == ["wear"]
    assert result.share_drifted == pytest.approx(1 / 3)
    assert result.prediction is not None and not result.prediction.drifted
    folder = settings.reports_dir / "drift" / MODEL / installation.with_reference
    assert result.html_path and Path(result.html_path).parent == folder
    assert "<html" in Path(result.html_path).read_text(encoding="utf-8")[:2000].lower()
    document = Path(result.json_path or "").read_text()
    assert len(document) < 10_000  # the per-feature table and the summary, not Evidently's dump
    assert DriftResult.model_validate(json.loads(document)) == result
    assert latest(settings.resolved_database_url, MODEL, installation.with_reference) == result


def test_history_is_oldest_first_and_per_version(installation: Installation) -> None:
    settings, version = installation.settings, installation.with_reference
    url = settings.resolved_database_url
    before = len(history(url, MODEL, version))
    first = run_drift_report(settings, MODEL, version, until=UNTIL, window_days=2)
    second = run_drift_report(settings, MODEL, version, until=UNTIL, window_days=7)
    runs = history(url, MODEL, version)
    assert runs[-2:] == [first, second] and len(runs) == before + 2
    assert first.current_rows < second.current_rows  # two days of the week's rows
    assert latest(url, MODEL, version) == second
    assert history(url, MODEL) == runs
    assert latest(url, MODEL, installation.without_reference) is None


def test_reference_is_read_back_exactly(installation: Installation) -> None:
    frame = reference_features(installation.registry, MODEL, installation.with_reference)
    pd.testing.assert_frame_equal(frame, REFERENCE)


def test_cannot_compute_without_a_reference(installation: Installation) -> None:
    with pytest.raises(DriftError, match="has no drift reference in its lineage"):
        run_drift_report(installation.settings, MODEL, installation.without_reference, until=UNTIL)


def test_cannot_compute_with_an_altered_reference(installation: Installation) -> None:
    with pytest.raises(DriftError, match="changed after registration"):
        reference_features(installation.registry, MODEL, installation.tampered)


def test_cannot_compute_on_too_few_served_rows(installation: Installation) -> None:
    settings, version = installation.settings, installation.with_reference
    with pytest.raises(DriftError, match=r"served rows: 0 rows .* at least 30 are needed"):
        run_drift_report(settings, MODEL, version, until=UNTIL - timedelta(days=7), window_days=1)
    with pytest.raises(DriftError, match="at least 2000 are needed"):
        run_drift_report(settings, MODEL, version, until=UNTIL, min_rows=2000)
    with pytest.raises(DriftError, match="window_days: must be greater than 0"):
        run_drift_report(settings, MODEL, version, until=UNTIL, window_days=0)
