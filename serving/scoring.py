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
    probability = float(forecaster.predict_proba_records([features])[0])
    threshold, _ = forecaster.fitted()
    return {"probability": probability, "alarm": probability >= threshold, "threshold": float(threshold)}


def score_yield(forecaster: Any, features: Mapping[str, Any]) -> dict[str, Any]:
    """Expected yield fraction of the order."""
    return {"yield_fraction": float(forecaster.predict_records([features])[0])}


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
