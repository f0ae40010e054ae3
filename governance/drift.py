"""Drift of a model version: its training reference against a window of the inputs it was served (Evidently).

The reference is the sample of the version's exact training rows recorded at registration (lineage
``reference``: the artifact ``reference/features.parquet`` and its sha256). The current data are the
``prediction_log`` rows the version produced an output for: rows it answered, and rows where it was the
shadow-scored challenger. Per feature the report gives Evidently's test, its score and threshold and the
verdict; then the share of drifted features and the drift of the prediction itself. Each report is saved as
Evidently's HTML and as a small JSON (the per-feature table and the summary) under
``MESOPS_HOME/reports/drift/<model>/<version>/``, and summarized in the ``drift_reports`` table.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from governance.lineage import ReferenceSample, read_reference_parquet
from governance.registry import Registry, model_name
from governance.signals import PREDICTION_KEY, DriftSummary, served_outputs
from mesops import database
from mesops.monitoring_tables import DriftReport
from mesops.settings import Settings, disable_telemetry

PREDICTION = "prediction"
# The key of each model's logged output that is its prediction (serving/scoring.py).
PREDICTION_KEYS: dict[str, str] = {model_name(family): key for family, key in PREDICTION_KEY.items()}
# Logged keys that identify a row (consumption: the meter, the day, its slot count); never compared.
ID_COLUMNS = ("series", "day", "rows")
EMPTY_ON_ONE_SIDE = "all values missing on one side"
EMPTY_ON_BOTH_SIDES = "all values missing on both sides"


class DriftError(RuntimeError):
    """The drift report could not be computed: no reference, a reference that fails its hash, too few rows."""


class FeatureDrift(BaseModel):
    """One column's drift: Evidently's method, its score (a p-value or a distance), threshold and verdict."""

    model_config = ConfigDict(frozen=True)

    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool


class DriftResult(BaseModel):
    """A drift report of one model version over one window of served traffic."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    window_start: datetime
    window_end: datetime
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift]
    share_drifted: float
    drifted_features: list[str]
    prediction: FeatureDrift | None
    html_path: str | None
    json_path: str | None
    computed_at: datetime

    @property
    def severity(self) -> tuple[float, str | None]:
        """The worst feature's drift score over its threshold, among features tested with a distance.

        Evidently's distances (Wasserstein normed in reference standard deviations, Jensen-Shannon, PSI) grow
        with how far a distribution moved, so score / threshold says how bad the worst drift is: a plant's slow
        wear sits around 1-3, a recalibrated or broken sensor far above. p-value tests (small references) say
        only whether, not how far: they are left out. Returns (severity, feature), (0.0, None) without any.
        """
        graded = [
            f for f in self.features if _is_distance(f.method) and math.isfinite(f.score) and f.threshold > 0
        ]
        if not graded:
            return 0.0, None
        worst = max(graded, key=lambda f: f.score / f.threshold)
        return worst.score / worst.threshold, worst.feature

    def summary(self) -> DriftSummary:
        """What the gates read of this report."""
        severity, worst = self.severity
        return DriftSummary(
            share_drifted=self.share_drifted,
            prediction_drifted=bool(self.prediction is not None and self.prediction.drifted),
            severity=severity,
            worst_feature=worst,
            rows=self.current_rows,
        )


def _is_distance(method: str) -> bool:
    return "p_value" not in method and method not in (EMPTY_ON_ONE_SIDE, EMPTY_ON_BOTH_SIDES)


# --- the two samples ----------------------------------------------------------------------------------------
def reference_features(registry: Registry, name: str, version: str) -> pd.DataFrame:
    """The version's drift reference (features + prediction), after checking it against its lineage hash."""
    return _reference(registry, name, version)[0]


def _reference(registry: Registry, name: str, version: str) -> tuple[pd.DataFrame, ReferenceSample]:
    record = registry.lineage(name, version).reference
    if record is None:
        raise DriftError(
            f"reference: {name} version {version} has no drift reference in its lineage (registered before "
            "references were recorded); register a newly trained version to get one"
        )
    data = registry.artifact_bytes(name, version, record.artifact_path)
    if data is None:
        raise DriftError(f"reference: {name} version {version} has no artifact {record.artifact_path}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.sha256:
        raise DriftError(
            f"reference: {record.artifact_path} of {name} version {version} hashes to {digest[:12]}…, its "
            f"lineage records {record.sha256[:12]}…: the artifact changed after registration"
        )
    return read_reference_parquet(data), record


def served_features(db_url: str, name: str, version: str, since: datetime, until: datetime) -> pd.DataFrame:
    """The logged features of the requests in [since, until) that ``version`` of ``name`` produced an output for.

    Those are the rows it answered and the rows where it was the shadow-scored challenger without an error
    (read by ``governance.signals.served_outputs``, the one reader of served traffic). Columns: the logged
    feature keys plus ``prediction``, taken from that version's own output.
    """
    key = PREDICTION_KEYS.get(name)
    if key is None:
        raise DriftError(
            f"model: no prediction key is known for {name!r} (known: {', '.join(PREDICTION_KEYS)})"
        )
    served = served_outputs(db_url, name, str(version), since, until)
    records = [
        {**(features or {}), PREDICTION: own.get(key)}
        for features, own in zip(served["features"], served["own"], strict=True)
        if own
    ]
    if not records:
        return pd.DataFrame({PREDICTION: pd.Series(dtype=float)})
    return pd.DataFrame.from_records(records)


# --- comparing ----------------------------------------------------------------------------------------------
def compare(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]
) -> tuple[list[FeatureDrift], FeatureDrift | None, Any]:
    """Evidently's drift tests (those of its DataDriftPreset) over ``columns``, and the drift of ``prediction``.

    Returns the per-column drift, the prediction's drift (or None) and the Evidently snapshot (for
    ``save_html``). The method is Evidently's default per column type and size; the verdict is Evidently's own
    test (p-value methods drift below their threshold, distances at or above it). A column whose values are
    all missing on one side cannot be tested: it counts as drifted (the feature stopped or started arriving);
    missing on both sides, as not drifted.
    """
    absent = [c for c in columns if c not in reference.columns]
    if absent:
        raise DriftError(f"reference: no column(s) {', '.join(absent)}")
    with_prediction = PREDICTION in reference.columns and PREDICTION in current.columns
    wanted = [*columns, PREDICTION] if with_prediction else list(columns)
    ref, cur, numerical = _aligned(reference, current, wanted)
    empty = {c: (ref[c].isna().all(), cur[c].isna().all()) for c in wanted}
    testable = [c for c in wanted if not any(empty[c])]
    results = _evidently(ref, cur, testable, numerical, with_prediction and PREDICTION in testable)
    drift = {c: _untestable(c, *empty[c]) for c in wanted if c not in testable} | results[0]
    prediction = drift.pop(PREDICTION, None) if with_prediction else None
    return [drift[c] for c in columns], prediction, results[1]


def _aligned(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Both samples with the same columns and types: numbers as floats, everything else as text.

    The type comes from the reference (the training frame); served values arrive through JSON. A column the
    current sample lacks is all missing there.
    """
    ref, cur, numerical = {}, {}, []
    for column in columns:
        ref_values = reference[column].reset_index(drop=True)
        cur_values = current[column] if column in current.columns else pd.Series(np.nan, index=current.index)
        cur_values = cur_values.reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(ref_values) and not pd.api.types.is_bool_dtype(ref_values):
            numerical.append(column)
            ref[column] = pd.to_numeric(ref_values, errors="coerce").astype(float)
            cur[column] = pd.to_numeric(cur_values, errors="coerce").astype(float)
        else:
            ref[column], cur[column] = _text(ref_values), _text(cur_values)
    return pd.DataFrame(ref), pd.DataFrame(cur, index=range(len(current))), numerical


def _text(values: pd.Series) -> pd.Series:
    return values.astype(object).map(lambda v: None if v is None or v != v else str(v))


def _untestable(column: str, reference_empty: bool, current_empty: bool) -> FeatureDrift:
    both = reference_empty and current_empty
    return FeatureDrift(
        feature=column,
        method=EMPTY_ON_BOTH_SIDES if both else EMPTY_ON_ONE_SIDE,
        score=0.0 if both else 1.0,
        threshold=1.0,
        drifted=not both,
    )


def _evidently(
    ref: pd.DataFrame, cur: pd.DataFrame, columns: list[str], numerical: list[str], with_prediction: bool
) -> tuple[dict[str, FeatureDrift], Any]:
    disable_telemetry()  # DO_NOT_TRACK before Evidently is imported (it only matters for its UI server)
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    features = [c for c in columns if c != PREDICTION]
    definition = DataDefinition(
        numerical_columns=[c for c in columns if c in numerical],
        categorical_columns=[c for c in columns if c not in numerical],
    )
    # What DataDriftPreset holds (the drifted-columns count and a value drift per column) without its extra
    # per-column summaries: the same tests and verdicts, about a third faster and a smaller HTML report.
    items: list[Any] = [DriftedColumnsCount(columns=features)] if features else []
    items += [ValueDrift(column=c) for c in features]
    if with_prediction:
        items.append(ValueDrift(column=PREDICTION))
    if not items:
        raise DriftError("columns: no column has values on both sides to compare")
    with warnings.catch_warnings():
        # constant columns make numpy warn about a zero variance inside Evidently's summaries
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report(items, include_tests=True).run(
            current_data=Dataset.from_pandas(cur[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(ref[columns], data_definition=definition),
        )
    return _column_drift(snapshot.dict()), snapshot


def _column_drift(summary: dict[str, Any]) -> dict[str, FeatureDrift]:
    """FeatureDrift per ValueDrift metric of an Evidently snapshot's dict, with the verdict of its test."""
    verdicts = {
        test["metric_config"]["metric_id"]: str(getattr(test["status"], "value", test["status"]))
        for test in summary["tests"]
        if test.get("id") == "drift"
    }
    out = {}
    for metric in summary["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith(":ValueDrift"):
            continue
        method, threshold, score = str(config["method"]), float(config["threshold"]), float(metric["value"])
        verdict = verdicts.get(metric["id"])
        drifted = verdict == "FAIL" if verdict is not None else _rule(method, score, threshold)
        out[config["column"]] = FeatureDrift(
            feature=config["column"], method=method, score=score, threshold=threshold, drifted=drifted
        )
    return out


def _rule(method: str, score: float, threshold: float) -> bool:
    """Evidently's rule when no test verdict is at hand: p-values drift below, distances at or above."""
    return score < threshold if "p_value" in method else score >= threshold


# --- the report ---------------------------------------------------------------------------------------------
def run_drift_report(
    settings: Settings,
    name: str,
    version: str,
    *,
    until: datetime | None = None,
    window_days: float | None = None,
    min_rows: int = 30,
) -> DriftResult:
    """Compare the version's reference with what it was served in [until - window_days, until); save, record.

    Defaults: until now, window_days ``settings.monitoring_window_days``. Saves
    ``reports/drift/<name>/<version>/<UTC stamp>.html`` (Evidently's) and ``.json`` (this result), and inserts
    a ``drift_reports`` row. DriftError when it cannot compute (no or altered reference, fewer than
    ``min_rows`` served rows). The platform database must be at the current schema (``mesops db upgrade``).
    """
    version = str(version)
    end = _aware(until or datetime.now(UTC), "until")
    days = settings.monitoring_window_days if window_days is None else float(window_days)
    if not days > 0:
        raise DriftError(f"window_days: must be greater than 0, got {days}")
    start = end - timedelta(days=days)
    reference, record = _reference(Registry.from_settings(settings), name, version)
    url = settings.resolved_database_url
    current = served_features(url, name, version, start, end)
    if len(current) < max(min_rows, 1):
        raise DriftError(
            f"served rows: {len(current)} rows of {name} version {version} between {start.isoformat()} and "
            f"{end.isoformat()}; at least {min_rows} are needed"
        )
    if reference.empty:
        raise DriftError(f"reference: the drift reference of {name} version {version} has no rows")
    columns = record.features or [c for c in reference.columns if c not in (*ID_COLUMNS, PREDICTION)]
    features, prediction, snapshot = compare(reference, current, columns)
    computed_at = datetime.now(UTC)
    folder = settings.reports_dir / "drift" / name / version
    folder.mkdir(parents=True, exist_ok=True)
    stamp = computed_at.strftime("%Y%m%dT%H%M%S%fZ")
    html_path, json_path = folder / f"{stamp}.html", folder / f"{stamp}.json"
    snapshot.save_html(str(html_path))
    drifted = [f.feature for f in features if f.drifted]
    result = DriftResult(
        model_name=name,
        version=version,
        window_start=start,
        window_end=end,
        reference_rows=len(reference),
        current_rows=len(current),
        features=features,
        share_drifted=len(drifted) / len(features) if features else 0.0,
        drifted_features=drifted,
        prediction=prediction,
        html_path=str(html_path),
        json_path=str(json_path),
        computed_at=computed_at,
    )
    json_path.write_text(result.model_dump_json(indent=2))
    _insert(url, result)
    return result


def _insert(db_url: str, result: DriftResult) -> None:
    prediction = result.prediction
    with database.session_scope(db_url) as session:
        session.add(
            DriftReport(
                model_name=result.model_name,
                model_version=result.version,
                window_start=result.window_start,
                window_end=result.window_end,
                reference_rows=result.reference_rows,
                current_rows=result.current_rows,
                feature_count=len(result.features),
                drifted_count=len(result.drifted_features),
                share_drifted=result.share_drifted,
                drifted_features=result.drifted_features,
                prediction_drifted=None if prediction is None else prediction.drifted,
                features=[_finite(f.model_dump()) for f in result.features],
                prediction=None if prediction is None else _finite(prediction.model_dump()),
                html_path=result.html_path,
                json_path=result.json_path,
                computed_at=result.computed_at,
            )
        )


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """JSON columns refuse NaN on PostgreSQL: a score Evidently could not compute is stored as null."""
    score = row.get("score")
    return row | {"score": None} if isinstance(score, float) and not math.isfinite(score) else row


# --- reading ------------------------------------------------------------------------------------------------
def latest(db_url: str, name: str, version: str) -> DriftResult | None:
    """The most recent drift report of a version, or None when there is none."""
    query = (
        select(DriftReport)
        .where(DriftReport.model_name == name, DriftReport.model_version == str(version))
        .order_by(DriftReport.computed_at.desc(), DriftReport.id.desc())
        .limit(1)
    )
    with database.session_scope(db_url) as session:
        row = session.scalars(query).first()
        return None if row is None else _result(row)


def history(db_url: str, name: str, version: str | None = None) -> list[DriftResult]:
    """Every drift report of a model (of one version when given), oldest first."""
    query = select(DriftReport).where(DriftReport.model_name == name)
    if version is not None:
        query = query.where(DriftReport.model_version == str(version))
    with database.session_scope(db_url) as session:
        rows = session.scalars(query.order_by(DriftReport.computed_at, DriftReport.id)).all()
        return [_result(row) for row in rows]


def _result(row: DriftReport) -> DriftResult:
    return DriftResult(
        model_name=row.model_name,
        version=row.model_version,
        window_start=_stored(row.window_start),
        window_end=_stored(row.window_end),
        reference_rows=row.reference_rows,
        current_rows=row.current_rows,
        features=[_feature(f) for f in row.features],
        share_drifted=row.share_drifted,
        drifted_features=list(row.drifted_features),
        prediction=None if row.prediction is None else _feature(row.prediction),
        html_path=row.html_path,
        json_path=row.json_path,
        computed_at=_stored(row.computed_at),
    )


def _feature(stored: dict[str, Any]) -> FeatureDrift:
    score = stored.get("score")
    return FeatureDrift.model_validate(stored | {"score": float("nan") if score is None else score})


def _aware(moment: datetime, field: str) -> datetime:
    """A window bound in UTC (SQLite compares stored UTC times as text: the bound must be UTC too)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{field}: must be timezone-aware (UTC), got {moment.isoformat()}")
    return moment.astimezone(UTC)


def _stored(moment: datetime) -> datetime:
    """A stored time in UTC; SQLite hands them back without a zone (they were written in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
