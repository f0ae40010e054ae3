"""A day of MES traffic against the running service: the demo's integration and planner, over real HTTP.

The "MES" replays the last day of the curated history: a machine status update per machine and shift (failure
risk), every order released that day (yield), each energy meter's day (consumption). A simulated planner then
decides a share of the open recommendations, and the outcomes known by now are posted: yield and consumption
of that day. Failure outcomes are not: whether a machine fails within the next shift after the last reading
lies beyond the data, so those labels have not matured yet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.zones import ZoneStore
from serving.client import MesopsClient, ServiceError

SHIFTS = ("A", "B", "C")
DECISIONS = (("accept", "agreed"), ("reject", "wrong_prediction"), ("modify", "adjusted_quantity"))
DECISION_WEIGHTS = (0.75, 0.15, 0.10)


@dataclass
class DemoDayReport:
    """What the day did: answers per model and arm, recommendation statuses, decisions, outcomes, errors."""

    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return sum(self.answers.values())


def run_demo_day(
    home: Any, url: str, integration_key: str, planner_key: str, seed: int = 7, decide_share: float = 0.6
) -> DemoDayReport:
    """Send the last day's requests, let the planner decide a share, post the outcomes known by now."""
    store = ZoneStore(home)
    report = DemoDayReport()
    answered: list[dict[str, Any]] = []
    with MesopsClient(url, integration_key) as mes:
        for ask, kwargs in _requests(store):
            try:
                answer = ask(mes)(**kwargs)
            except ServiceError as err:
                report.errors[f"{err.status} {err.error}"] += 1
                continue
            answered.append(answer)
            report.answers[(answer["model"], answer["answered_by"])] += 1
            report.statuses[answer["recommendation"]["status"]] += 1
        _post_outcomes(mes, store, answered, report)
    with MesopsClient(url, planner_key) as planner:
        _decide(planner, answered, report, np.random.default_rng(seed), decide_share)
    return report


def _requests(store: ZoneStore) -> list[tuple[Any, dict[str, Any]]]:
    machines = sorted(store.read_all("curated", "machines")["machine_id"])
    orders = store.read_all("curated", "production_orders")
    released = pd.to_datetime(orders["released_at"])
    last_day = released.max().normalize()
    todays = orders.loc[released >= last_day, "order_id"].tolist() or orders["order_id"].tail(10).tolist()
    energy = store.read_all("curated", "energy_readings")
    day = _last_complete_day(energy).date().isoformat()
    asks: list[tuple[Any, dict[str, Any]]] = []
    for shift in SHIFTS:
        for machine in machines:
            asks.append(
                (
                    lambda c: c.failure_risk,
                    {"machine_id": machine, "correlation_id": f"status-{machine}-{shift}"},
                )
            )
    asks += [(lambda c: c.yield_forecast, {"order_id": order}) for order in todays]
    asks += [
        (lambda c: c.consumption_forecast, {"meter_id": m, "day": day})
        for m in sorted(energy["meter_id"].unique())
    ]
    return asks


def _last_complete_day(energy: pd.DataFrame) -> pd.Timestamp:
    """The latest day every meter has all 96 quarter-hours of (so its outcome is known)."""
    days = (pd.to_datetime(energy["ts"]) - pd.Timedelta(minutes=15)).dt.normalize()
    counts = energy.assign(day=days).groupby(["day", "meter_id"]).size().unstack(fill_value=0)
    complete = counts[(counts >= 96).all(axis=1)]
    return pd.Timestamp(complete.index.max() if len(complete) else days.max())


def _post_outcomes(
    mes: MesopsClient, store: ZoneStore, answered: list[dict[str, Any]], report: DemoDayReport
) -> None:
    orders = store.read_all("curated", "production_orders").set_index("order_id")
    energy = store.read_all("curated", "energy_readings")
    energy["day"] = (pd.to_datetime(energy["ts"]) - pd.Timedelta(minutes=15)).dt.normalize()
    for answer in answered:
        model = answer["model"].removeprefix("mesops-")
        if model == "failure":
            report.outcomes["failure: pending (the next shift lies beyond the data)"] += 1
            continue
        if model == "yield":
            row = orders.loc[answer["order_id"]]
            if pd.isna(row["good_qty"]) or pd.isna(row["actual_end"]):
                report.outcomes["yield: pending (order not closed)"] += 1
                continue
            actual, at = float(row["good_qty"]), pd.Timestamp(row["actual_end"])
            entity = answer["order_id"]
        else:
            day = pd.Timestamp(answer["day"])
            mine = energy[(energy["meter_id"] == answer["meter_id"]) & (energy["day"] == day)]
            if len(mine) < 96:
                report.outcomes["consumption: pending (day not complete)"] += 1
                continue
            actual, at, entity = float(mine["kwh"].sum()), day + pd.Timedelta(days=1), answer["meter_id"]
        stamp = (at.tz_localize("UTC") if at.tzinfo is None else at).isoformat()
        mes.outcome(model, answer["correlation_id"], entity, actual, stamp)
        report.outcomes[f"{model}: posted"] += 1


def _decide(
    planner: MesopsClient,
    answered: list[dict[str, Any]],
    report: DemoDayReport,
    rng: np.random.Generator,
    share: float,
) -> None:
    for answer in answered:
        recommendation = answer["recommendation"]
        if recommendation["status"] not in ("OPEN", "PENDING_APPROVAL") or rng.random() >= share:
            continue
        decision, reason = DECISIONS[int(rng.choice(len(DECISIONS), p=DECISION_WEIGHTS))]
        value = None
        if decision == "modify":
            value = _modified_value(answer)
            if value is None:
                decision, reason = "accept", "agreed"
        planner.feedback(recommendation["recommendation_id"], decision, reason, value)
        report.decisions[decision] += 1


def _modified_value(answer: dict[str, Any]) -> float | None:
    """The planner's own figure: 5 % more than forecast (only yield and consumption have a quantity)."""
    if "expected_good_qty" in answer:
        return round(answer["expected_good_qty"] * 1.05, 1)
    if "upper_kwh" in answer:
        return round(answer["upper_kwh"] * 1.05, 1)
    return None
