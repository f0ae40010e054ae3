"""Recommendations made from predictions: an action class (what policies name as low- or high-risk) and a
sentence a planner can act on. Plain functions of the prediction; no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Advice:
    """What to recommend: the class the phase policy judges, the sentence, and the numbers behind it."""

    action_class: str
    text: str
    details: dict[str, Any]


def failure_advice(machine_id: str, probability: float, threshold: float, horizon_hours: float) -> Advice:
    """Plan maintenance when the risk reaches the alarm threshold; otherwise no action."""
    details = {"probability": round(probability, 4), "threshold": round(threshold, 4)}
    if probability >= threshold:
        return Advice(
            "plan_maintenance",
            f"plan maintenance on {machine_id} before the end of this shift "
            f"(failure risk {probability:.0%} within {horizon_hours:g} h, alarm level {threshold:.0%})",
            details,
        )
    return Advice(
        "no_action",
        f"no action on {machine_id}: failure risk {probability:.0%} within {horizon_hours:g} h "
        f"is below the alarm level {threshold:.0%}",
        details,
    )


def yield_advice(
    order_id: str, yield_fraction: float, planned_qty: float, small_share: float = 0.05
) -> Advice:
    """Call off the extra material the expected scrap needs; small call-offs are their own (low-risk) class."""
    good = yield_fraction * planned_qty
    needed = math.ceil(planned_qty / yield_fraction) if yield_fraction > 0 else math.inf
    extra = 0 if needed <= planned_qty else needed - planned_qty
    details = {
        "yield_fraction": round(yield_fraction, 4),
        "expected_good_qty": round(good, 1),
        "extra_units": extra if math.isfinite(extra) else None,
    }
    head = f"order {order_id}: expect {yield_fraction:.0%} yield ({good:,.0f} good of {planned_qty:,.0f})"
    if not math.isfinite(extra):
        return Advice("review_order", f"{head}; no good output expected: review the order", details)
    if extra == 0:
        return Advice("no_action", f"{head}; no extra material needed", details)
    action = "small_extra_call_off" if extra <= small_share * planned_qty else "extra_call_off"
    return Advice(action, f"{head}; call off {extra:,.0f} extra units of input material", details)


def consumption_advice(
    meter_id: str, day: str, total: float, lower: float, upper: float, peak: str
) -> Advice:
    """Reserve energy for the day at the upper end of the interval."""
    return Advice(
        "energy_reservation",
        f"meter {meter_id}: reserve {upper:,.0f} kWh for {day} (forecast {total:,.0f} kWh, "
        f"interval {lower:,.0f}-{upper:,.0f}); peak quarter-hour ends {peak}",
        {
            "total_kwh": round(total, 1),
            "lower_kwh": round(lower, 1),
            "upper_kwh": round(upper, 1),
            "peak": peak,
        },
    )
