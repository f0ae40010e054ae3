"""Calibration, decision thresholds and metrics of a binary failure forecast."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

CalibrationMethod = Literal["platt", "isotonic"]
_EPS = 1e-6


class ProbabilityCalibrator:
    """Maps raw scores to calibrated probabilities (Platt: logistic on the logit; isotonic: monotone steps)."""

    def __init__(self, method: CalibrationMethod = "platt") -> None:
        if method not in ("platt", "isotonic"):
            raise ValueError(f"calibration: must be 'platt' or 'isotonic', got {method!r}")
        self.method = method
        self._model: LogisticRegression | IsotonicRegression | None = None

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> ProbabilityCalibrator:
        """Fit on held-out scores and labels (both classes must be present)."""
        labels = np.asarray(labels, dtype=int)
        if len(np.unique(labels)) < 2:
            raise ValueError(
                "calibration labels: need both failures and non-failures in the validation slice"
            )
        if self.method == "platt":
            self._model = LogisticRegression(C=1e4).fit(_logit(scores)[:, None], labels)
        else:
            self._model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw scores."""
        if self._model is None:
            raise RuntimeError("ProbabilityCalibrator: call fit before transform")
        if isinstance(self._model, LogisticRegression):
            # the binary logistic's probability, computed directly: sklearn's predict_proba spends ~0.2 ms
            # validating its input, which is most of a served prediction
            return expit(_logit(scores) * self._model.coef_[0, 0] + self._model.intercept_[0])
        return self._model.predict(np.asarray(scores, dtype=float))


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray, miss_cost: float | None = None) -> float:
    """Decision threshold on validation data: max F1, or min (false alarms + miss_cost x missed failures)."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(probabilities, dtype=float)
    if y.sum() == 0:
        raise ValueError("threshold labels: the validation slice has no failures")
    candidates = np.unique(p)
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    # predictions p >= c for each candidate c: counts from the sorted cumulative sums
    take = np.searchsorted(-p_sorted, -candidates, side="right")
    tp = np.concatenate([[0], np.cumsum(y_sorted)])[take]
    fp = take - tp
    fn = y.sum() - tp
    if miss_cost is None:
        score = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    else:
        if miss_cost <= 0:
            raise ValueError(f"miss_cost: must be > 0, got {miss_cost}")
        score = -(fp + miss_cost * fn)
    return float(candidates[int(np.argmax(score))])


def reliability_bins(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Equal-width reliability bins: mean predicted probability, observed failure rate and rows per bin."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(which, weights=p, minlength=bins) / count
        observed = np.bincount(which, weights=y, minlength=bins) / count
    keep = count > 0  # empty bins carry no evidence; JSON has no NaN
    return {
        "bin_lower": edges[:-1][keep].tolist(),
        "bin_mean_predicted": predicted[keep].round(6).tolist(),
        "bin_observed_rate": observed[keep].round(6).tolist(),
        "bin_rows": count[keep].tolist(),
    }


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean gap between predicted probability and observed rate over the reliability bins."""
    r = reliability_bins(labels, probabilities, bins)
    rows = np.asarray(r["bin_rows"])
    gap = np.abs(np.asarray(r["bin_mean_predicted"]) - np.asarray(r["bin_observed_rate"]))
    return float((rows * gap).sum() / rows.sum())


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """PR-AUC (average precision) and ROC-AUC; both need failures and non-failures among the rows."""
    y = np.asarray(labels, dtype=int)
    if len(np.unique(y)) < 2:
        raise ValueError("labels: ranking metrics need both failures and non-failures")
    s = np.asarray(scores, dtype=float)
    return {"pr_auc": float(average_precision_score(y, s)), "roc_auc": float(roc_auc_score(y, s))}


def decision_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and alarm rate of the decision ``probability >= threshold``."""
    y = np.asarray(labels, dtype=int)
    alarm = np.asarray(probabilities, dtype=float) >= threshold
    tp = int((alarm & (y == 1)).sum())
    fp = int((alarm & (y == 0)).sum())
    fn = int((~alarm & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision_at_threshold": precision,
        "recall_at_threshold": recall,
        "f1_at_threshold": f1,
        "alarm_rate": float(alarm.mean()) if len(y) else 0.0,
    }


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Brier score (mean squared error of the probability)."""
    return float(brier_score_loss(np.asarray(labels, dtype=int), np.asarray(probabilities, dtype=float)))


def _logit(scores: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))
