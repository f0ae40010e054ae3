"""How each forecaster scores the features of one request, giving a JSON-ready output (logged for both arms)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from models.failure_features import HORIZON

HORIZON_HOURS = HORIZON / pd.Timedelta(hours=1)


class FeatureError(ValueError):
    """Features passed in a request that do not fit the model: names the field and the rule."""


def check_features(features: Mapping[str, Any], expected: list[str]) -> None:
    """Every feature of the model and no other; FeatureError naming the missing and unknown ones."""
    missing = [name for name in expected if name not in features]
    unknown = sorted(set(features) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
    if unknown:
        problems.append(f"not features of this model: {', '.join(unknown[:10])}")
    if problems:
        raise FeatureError(f"features: must hold every feature of the model by name; {'; '.join(problems)}")


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
