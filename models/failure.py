"""Failure forecaster: probability that a machine goes down with an alarm within the next shift.

LightGBM on the shared failure features, calibrated on the validation slice (Platt or isotonic), with a decision
threshold chosen on the same validation slice and never on test data. Judged against two plain baselines: the
training prevalence (a constant) and a rule that ranks by tool wear.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from models.evaluation import BaselineComparison, EvaluationReport, SliceMetrics
from models.failure_features import (
    HORIZON,
    build_failure_features,
    failure_labels,
    feature_names,
    forecast_rows,
)
from models.failure_metrics import (
    CalibrationMethod,
    ProbabilityCalibrator,
    brier,
    choose_threshold,
    decision_metrics,
    expected_calibration_error,
    ranking_metrics,
    reliability_bins,
)
from models.splits import TimeSplit, split_by_time

log = logging.getLogger(__name__)

LABEL = "failure"
TIME_COLUMN = "forecast_at"


class FailureModelParams(BaseModel):
    """Hyper-parameters, calibration and decision policy of the failure forecaster."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_estimators: int = Field(default=300, ge=1, description="Boosting rounds (fixed: no early stopping).")
    learning_rate: float = Field(default=0.03, gt=0, le=1, description="LightGBM learning rate.")
    num_leaves: int = Field(default=7, ge=2, description="Leaves per tree.")
    min_child_samples: int = Field(default=40, ge=1, description="Rows per leaf at least.")
    feature_fraction: float = Field(default=0.8, gt=0, le=1, description="Share of features per tree.")
    lambda_l2: float = Field(default=1.0, ge=0, description="L2 regularization of leaf values.")
    calibration: CalibrationMethod = Field(
        default="platt", description="Calibration fitted on the validation slice: 'platt' or 'isotonic'."
    )
    miss_cost: float | None = Field(
        default=None,
        gt=0,
        description="Cost of a missed failure relative to a false alarm; None chooses the max-F1 threshold.",
    )
    reliability_bins: int = Field(default=10, ge=2, description="Equal-width bins of the reliability table.")
    rule_column: str = Field(
        default="tool_wear_min_last", description="Feature the rule baseline ranks by (tool wear)."
    )
    seed: int = Field(default=0, ge=0, description="Seed of LightGBM's random draws.")
    num_threads: int = Field(
        default=1,
        ge=1,
        description="LightGBM threads (more threads are slower on small data on a busy host).",
    )

    def lightgbm_params(self) -> dict[str, object]:
        """Deterministic LightGBM training parameters."""
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }


class FailureForecaster:
    """Calibrated failure probability per forecast row, and an alarm at a validation-chosen threshold."""

    def __init__(self, params: FailureModelParams | None = None) -> None:
        self.params = params or FailureModelParams()
        self.features: list[str] = []
        self.categories: dict[str, list[str]] = {}
        self.booster: lgb.Booster | None = None
        self.calibrator = ProbabilityCalibrator(self.params.calibration)
        self.threshold: float | None = None
        self.train_prevalence: float | None = None
        self.validation_metrics: dict[str, float] = {}

    def fit(
        self,
        train_x: pd.DataFrame,
        train_y: pd.Series,
        validation_x: pd.DataFrame,
        validation_y: pd.Series,
    ) -> FailureForecaster:
        """Train on ``train``; calibrate and choose the threshold on ``validation`` (later in time)."""
        _check_labels(train_y, "train")
        _check_labels(validation_y, "validation")
        self.features = list(train_x.columns)
        self.categories = {
            c: sorted(train_x[c].dropna().astype(str).unique())
            for c in self.features
            if not pd.api.types.is_numeric_dtype(train_x[c])
        }
        data = lgb.Dataset(self._matrix(train_x), label=np.asarray(train_y, dtype=int), free_raw_data=True)
        self.booster = lgb.train(
            self.params.lightgbm_params(), data, num_boost_round=self.params.n_estimators
        )
        self.train_prevalence = float(np.mean(train_y))
        raw = self.raw_score(validation_x)
        self.calibrator.fit(raw, np.asarray(validation_y, dtype=int))
        calibrated = self.calibrator.transform(raw)
        self.threshold = choose_threshold(validation_y, calibrated, self.params.miss_cost)
        self.validation_metrics = {
            **ranking_metrics(validation_y, raw),
            "brier_uncalibrated": brier(validation_y, raw),
            "brier": brier(validation_y, calibrated),
        }
        log.info(
            "failure forecaster: %d train rows, validation PR-AUC %.3f, threshold %.3f",
            len(train_x),
            self.validation_metrics["pr_auc"],
            self.threshold,
        )
        return self

    def raw_score(self, features: pd.DataFrame) -> np.ndarray:
        """LightGBM's uncalibrated probability."""
        if self.booster is None:
            raise RuntimeError("FailureForecaster: call fit before predicting")
        return self.booster.predict(self._matrix(features))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of a failure within the horizon, per row."""
        return self.calibrator.transform(self.raw_score(features))

    def predict_proba_records(self, records: Sequence[Mapping[str, object]]) -> np.ndarray:
        """:meth:`predict_proba` for a few feature dicts, without building a DataFrame (the serving path).

        Categorical values become the category codes LightGBM learned (NaN when unseen), numbers floats
        (NaN when missing); one thread, since a one-row predict gains nothing from more and its tail
        latency suffers.
        """
        if self.booster is None:
            raise RuntimeError("FailureForecaster: call fit before predicting")
        matrix = np.full((len(records), len(self.features)), np.nan)
        codes = {c: {v: float(i) for i, v in enumerate(cats)} for c, cats in self.categories.items()}
        for i, record in enumerate(records):
            for j, name in enumerate(self.features):
                value = record.get(name)
                if value is None:
                    continue
                if name in codes:
                    matrix[i, j] = codes[name].get(str(value), np.nan)
                else:
                    matrix[i, j] = float(value)  # type: ignore[arg-type]
        raw = self.booster.predict(matrix, num_threads=1)
        return self.calibrator.transform(raw)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Alarm (True) where the calibrated probability reaches the decision threshold."""
        threshold, _ = self.fitted()
        return self.predict_proba(features) >= threshold

    def evaluate(
        self,
        features: pd.DataFrame,
        labels: pd.Series,
        *,
        dataset: str,
        split: dict[str, str],
        rows: dict[str, int],
        groups: pd.DataFrame | None = None,
    ) -> EvaluationReport:
        """Test metrics, both baselines, calibration, and slices by each column of ``groups``."""
        y = np.asarray(labels, dtype=int)
        _check_labels(labels, "test")
        raw = self.raw_score(features)
        p = self.calibrator.transform(raw)
        metrics, baseline = self._metrics(features, y, raw, p)
        calibration: dict[str, float | list[float]] = {
            "brier": metrics["brier"],
            "brier_uncalibrated": metrics["brier_uncalibrated"],
            "brier_prevalence": metrics["brier_prevalence"],
            "expected_calibration_error": expected_calibration_error(y, p, self.params.reliability_bins),
            **reliability_bins(y, p, self.params.reliability_bins),
        }
        slices = [] if groups is None else self._slices(groups, y, p)
        return EvaluationReport(
            task="failure",
            dataset=dataset,
            split={**split, **self.validation_use()},
            rows=rows,
            features=self.features,
            metrics=metrics,
            baseline=baseline,
            slices=slices,
            calibration=calibration,
            threshold=self.threshold,
        )

    def validation_use(self) -> dict[str, str]:
        """How the validation slice was used (for the report's split field)."""
        rule = (
            "max F1" if self.params.miss_cost is None else f"min cost, miss = {self.params.miss_cost} x alarm"
        )
        return {
            "calibration": f"{self.params.calibration}, fitted on validation",
            "threshold": f"{rule}, chosen on validation",
        }

    def _metrics(
        self, features: pd.DataFrame, y: np.ndarray, raw: np.ndarray, p: np.ndarray
    ) -> tuple[dict[str, float], BaselineComparison]:
        threshold, prevalence_rate = self.fitted()
        prevalence = np.full(len(y), prevalence_rate)
        rule = rule_scores(features, self.params.rule_column)
        model = ranking_metrics(y, p)
        base_prev = ranking_metrics(y, prevalence)
        base_rule = ranking_metrics(y, rule)
        metrics = {
            **model,
            "brier": brier(y, p),
            "brier_uncalibrated": brier(y, raw),
            "brier_prevalence": brier(y, prevalence),
            **decision_metrics(y, p, threshold),
            "test_prevalence": float(y.mean()),
            "baseline_prevalence_pr_auc": base_prev["pr_auc"],
            "baseline_tool_wear_pr_auc": base_rule["pr_auc"],
            "baseline_tool_wear_roc_auc": base_rule["roc_auc"],
            **{f"validation_{k}": v for k, v in self.validation_metrics.items()},
        }
        if base_rule["pr_auc"] >= base_prev["pr_auc"]:
            name, value = f"tool-wear rule (score = {self.params.rule_column})", base_rule["pr_auc"]
        else:
            name, value = "prevalence (constant training failure rate)", base_prev["pr_auc"]
        comparison = BaselineComparison(
            metric="pr_auc",
            higher_is_better=True,
            model_value=model["pr_auc"],
            baseline_name=name,
            baseline_value=value,
        )
        return metrics, comparison

    def _slices(self, groups: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> list[SliceMetrics]:
        threshold, _ = self.fitted()
        out = []
        for dimension in groups.columns:
            values = groups[dimension].astype(str).to_numpy()
            for value in sorted(set(values)):
                mask = values == value
                metrics = slice_metrics(y[mask], p[mask], threshold)
                out.append(
                    SliceMetrics(dimension=dimension, value=value, rows=int(mask.sum()), metrics=metrics)
                )
        return out

    def fitted(self) -> tuple[float, float]:
        """Decision threshold and training failure rate (raises before fit)."""
        if self.threshold is None or self.train_prevalence is None:
            raise RuntimeError("FailureForecaster: call fit before predicting")
        return self.threshold, self.train_prevalence

    def _matrix(self, features: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.features if c not in features.columns]
        if missing:
            raise ValueError(f"features: missing column(s) {', '.join(missing)}")
        frame = features[self.features].copy()
        for column, categories in self.categories.items():
            frame[column] = pd.Categorical(frame[column].astype(object), categories=categories)
        for column in self.features:
            if column not in self.categories:
                frame[column] = pd.to_numeric(frame[column]).astype(float)
        return frame


def rule_scores(features: pd.DataFrame, column: str) -> np.ndarray:
    """The rule baseline's score: the column's value (tool wear), lowest where unknown."""
    if column not in features.columns:
        raise ValueError(f"features: the rule baseline needs column {column}")
    values = pd.to_numeric(features[column]).to_numpy(dtype=float, na_value=np.nan)
    return np.nan_to_num(values, nan=-1.0)


def slice_metrics(y: np.ndarray, p: np.ndarray, threshold: float | None) -> dict[str, float]:
    """Failure count and rate, mean probability, Brier, decision metrics (with a threshold); AUCs if both classes."""
    metrics = {
        "failures": float(y.sum()),
        "observed_rate": float(y.mean()),
        "mean_predicted": float(p.mean()),
        "brier": brier(y, p),
    }
    if threshold is not None:
        metrics.update(decision_metrics(y, p, threshold))
    if 0 < y.sum() < len(y):
        metrics.update(ranking_metrics(y, p))
    return metrics


def failure_dataset(
    tables: Mapping[str, pd.DataFrame],
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    horizon: pd.Timedelta = HORIZON,
) -> pd.DataFrame:
    """Forecast rows (shift starts, machine running or idle) with their label and features."""
    rows = forecast_rows(tables, start, end, horizon)
    labels = failure_labels(tables["machine_events"], rows, horizon)
    features = build_failure_features(tables, rows)
    return pd.concat([rows, labels.rename(LABEL), features], axis=1)


def failure_split(
    tables: Mapping[str, pd.DataFrame], validation_share: float = 0.15, test_share: float = 0.15
) -> TimeSplit:
    """The failure dataset cut by forecast time: train, validation (calibration, threshold), test."""
    return split_by_time(failure_dataset(tables), TIME_COLUMN, validation_share, test_share)


def train_failure_forecaster(
    tables: Mapping[str, pd.DataFrame],
    params: FailureModelParams | None = None,
    validation_share: float = 0.15,
    test_share: float = 0.15,
    *,
    split: TimeSplit | None = None,
) -> tuple[FailureForecaster, EvaluationReport]:
    """Build the dataset from simulator or curated tables, split by time, fit, and evaluate on the last slice.

    ``split``: a :func:`failure_split` already made (the caller keeps its training rows, e.g. for lineage).
    """
    split = split or failure_split(tables, validation_share, test_share)
    names = feature_names()
    forecaster = FailureForecaster(params).fit(
        split.train[names], split.train[LABEL], split.validation[names], split.validation[LABEL]
    )
    report = forecaster.evaluate(
        split.test[names],
        split.test[LABEL],
        dataset="simulator",
        split={"scheme": "time-ordered (models.splits.split_by_time)", **split.window(TIME_COLUMN)},
        rows={"train": len(split.train), "validation": len(split.validation), "test": len(split.test)},
        groups=split.test[["line_id", "machine_id"]],
    )
    return forecaster, report


def _check_labels(labels: pd.Series, part: str) -> None:
    values = pd.Series(labels)
    if values.isna().any() or not values.isin([0, 1]).all():
        raise ValueError(f"{part} labels: must be 0 or 1 without nulls")
    if values.nunique() < 2:
        raise ValueError(f"{part} labels: need both failures and non-failures")
