"""How each forecaster scores the features of one request, giving a JSON-ready output (logged for both arms)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import pandas as pd

from models.failure_features import CATEGORICAL, HORIZON

HORIZON_HOURS = HORIZON / pd.Timedelta(hours=1)
# A text feature is a category (a machine type, a line id), as long as the longest id the API takes at most
# (EntityId in serving/schemas.py). Anything longer is a mistake, and it would be logged with the prediction.
MAX_TEXT_FEATURE_CHARS = 120
SHOWN_PROBLEMS = 10


class FeatureError(ValueError):
    """Features passed in a request that do not fit the model: names the field and the rule."""


def check_features(
    features: Mapping[str, Any], expected: list[str], textual: Collection[str] = CATEGORICAL
) -> None:
    """Every feature of the model, no other, each value of its kind; FeatureError naming the feature and rule.

    Args:
        features: the request's ``features``, name -> number, text or null (JSON-typed by the schema).
        expected: the model's feature names (``forecaster.features``).
        textual: those of ``expected`` holding a category as text (default: the failure model's categorical
            features, models/failure_features.CATEGORICAL); every other feature must be a number.
    """
    missing = [name for name in expected if name not in features]
    unknown = sorted(set(features) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing {_listed(missing)}")
    if unknown:
        problems.append(f"not features of this model: {_listed(unknown)}")
    if problems:
        raise FeatureError(f"features: must hold every feature of the model by name; {'; '.join(problems)}")
    wrong = [p for name in expected if (p := _value_problem(name, features[name], name in textual))]
    if wrong:
        raise FeatureError(f"features: each value must fit its feature; {_listed(wrong, sep='; ')}")


def _value_problem(name: str, value: Any, is_text: bool) -> str | None:
    """What is wrong with one feature value, naming the feature and its kind but never echoing the value."""
    if value is None:
        return None  # missing: the model handles it as it did in training
    if is_text:
        if not isinstance(value, str):
            return f"{name} must be text or null, not {_kind(value)}"
        if len(value) > MAX_TEXT_FEATURE_CHARS:
            return f"{name} must be text of at most {MAX_TEXT_FEATURE_CHARS} characters, not {len(value)}"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} must be a number or null, not {_kind(value)}"
    if not math.isfinite(value):
        return f"{name} must be a finite number or null, not {value}"
    return None


def _kind(value: Any) -> str:
    return "text" if isinstance(value, str) else type(value).__name__


def _listed(items: list[str], sep: str = ", ") -> str:
    shown = sep.join(items[:SHOWN_PROBLEMS])
    return f"{shown}{' …' if len(items) > SHOWN_PROBLEMS else ''}"


def score_failure(forecaster: Any, features: Mapping[str, Any]) -> dict[str, Any]:
    """Calibrated probability, the alarm and the threshold it was judged against."""
    return score_failure_many(forecaster, [features])[0]


def score_failure_many(forecaster: Any, records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """:func:`score_failure` of several requests with one model predict (shadow scoring of a log batch)."""
    threshold = float(forecaster.fitted()[0])
    return [
        {"probability": p, "alarm": p >= threshold, "threshold": threshold}
        for p in map(float, forecaster.predict_proba_records(records))
    ]


def score_yield(forecaster: Any, features: Mapping[str, Any]) -> dict[str, Any]:
    """Expected yield fraction of the order."""
    return score_yield_many(forecaster, [features])[0]


def score_yield_many(forecaster: Any, records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """:func:`score_yield` of several orders with one model predict."""
    return [{"yield_fraction": float(y)} for y in forecaster.predict_records(records)]


def score_consumption_many(forecaster: Any, days: list[pd.DataFrame]) -> list[dict[str, Any]]:
    """:func:`score_consumption` of several meter-days (one predict per day: few requests, many rows each)."""
    return [score_consumption(forecaster, rows) for rows in days]


def score_consumption(forecaster: Any, rows: pd.DataFrame) -> dict[str, Any]:
    """The day's quarter-hours and their sum, with the interval (sums of slot bounds: a conservative band)."""
    forecast = forecaster.predict_features(rows)
    slots = [
        {"ts": ts.isoformat(), "forecast": float(f), "lower": float(lo), "upper": float(hi)}
        for ts, f, lo, hi in zip(
            pd.to_datetime(forecast["ts"]),
            forecast["forecast"],
            forecast["lower"],
            forecast["upper"],
            strict=True,
        )
    ]
    peak = max(slots, key=lambda s: s["forecast"]) if slots else None
    return {
        "total_kwh": float(forecast["forecast"].sum()),
        "lower_kwh": float(forecast["lower"].sum()),
        "upper_kwh": float(forecast["upper"].sum()),
        "coverage": float(forecaster.config.coverage),
        "peak": None if peak is None else peak["ts"],
        "slots": slots,
    }
