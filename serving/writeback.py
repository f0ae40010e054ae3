"""Write-back payloads: a committed recommendation in the shape of the MES the event came from.

- Opcenter: a yield forecast is a PATCH body for the ProductionOrder (custom properties); a failure risk is a
  DispatchList entry for the equipment (the Dispatcher Console shows it to the shift).
- Plex: a yield forecast is a custom-object record on the job; a failure risk is an Activity Center
  notification for the workcenter.
- A released order's message also carries the expected energy of its line on the release day (the consumption
  forecast of the line's meters) in the same custom properties / record (:func:`build_release`).

Every payload carries a ``mesops`` block (event id, recommendation id, model, version, phase, status) so the MES
can correlate it; a ``PENDING_APPROVAL`` one carries an ``approval`` block with what a planner needs to decide
(the recommendation, the numbers behind it, who answered, and how to record the decision). Pure functions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from governance.recommendations import ALLOWED_REASONS, RecommendationStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class CommittedPrediction:
    """A prediction and its recommendation as committed in the prediction log (what a write-back reports)."""

    request_id: str
    model_name: str
    model_version: str
    phase: str
    answered_by: str
    entity_id: str
    line_id: str | None
    correlation_id: str
    output: dict[str, Any]
    recommendation_id: str
    action_class: str
    text: str
    details: dict[str, Any]
    status: str


@dataclass(frozen=True, slots=True)
class WriteBack:
    """One message for the MES: its kind, the routing key it is published under, and its body."""

    source: str
    kind: str
    routing_key: str
    body: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (stored in the event ledger, republished from there)."""
        return asdict(self)


def build(source: str, event_id: str, prediction: CommittedPrediction) -> WriteBack:
    """The write-back of a committed prediction for the MES ``source`` (opcenter or plex)."""
    task = _task(prediction)
    builder = _BUILDERS.get((source, task))
    if builder is None:
        raise ValueError(f"source/model: no write-back shape for {source} {task} predictions")
    kind, body = builder(prediction)
    body["mesops"] = _mesops_block(event_id, prediction)
    if prediction.status == RecommendationStatus.PENDING_APPROVAL:
        body["approval"] = _approval_block(prediction)
    return WriteBack(source, kind, f"{source}.{kind}", body)


def build_release(
    source: str,
    event_id: str,
    order: CommittedPrediction,
    energy: list[CommittedPrediction],
    day: date,
    skipped: list[str],
) -> WriteBack:
    """The write-back of a released order: its yield forecast and, in the same message, the expected energy of
    its line on ``day`` (the ``energy`` forecasts of the line's meters, summed); ``skipped`` says why a meter's
    forecast is missing (the energy fields are then null or cover the meters that could be forecast)."""
    tasks = [_task(order)] + [_task(p) for p in energy]
    if tasks != ["yield"] + ["consumption"] * len(energy):
        raise ValueError(
            f"model: a released order's write-back is yield and consumption forecasts, not {tasks}"
        )
    built = build(source, event_id, order)
    fields = _energy_fields(energy, day, skipped)
    names = _ENERGY_NAMES[source]
    target = built.body["body"] if source == "opcenter" else built.body["record"]
    target.update({names[k]: v for k, v in fields.items()})
    built.body["mesops"]["consumption"] = [_consumption_block(p) for p in energy]
    if skipped:
        built.body["mesops"]["consumption_skipped"] = skipped
    return built


def _task(p: CommittedPrediction) -> str:
    return p.model_name.removeprefix("mesops-")


def _energy_fields(energy: list[CommittedPrediction], day: date, skipped: list[str]) -> dict[str, Any]:
    def total(key: str) -> float | None:
        return round(sum(float(p.details[key]) for p in energy), 1) if energy else None

    return {
        "kwh": total("total_kwh"),
        "lower": total("lower_kwh"),
        "upper": total("upper_kwh"),
        "day": day.isoformat(),
        "meters": ",".join(p.entity_id for p in energy) or None,
        "text": "; ".join(p.text for p in energy) or None,
        "skipped": "; ".join(skipped) or None,
    }


# The energy fields in each MES's naming (Opcenter custom properties, Plex custom-object fields).
_ENERGY_NAMES = {
    "opcenter": {
        "kwh": "MesopsExpectedEnergyKwh",
        "lower": "MesopsExpectedEnergyLowerKwh",
        "upper": "MesopsExpectedEnergyUpperKwh",
        "day": "MesopsEnergyDay",
        "meters": "MesopsEnergyMeters",
        "text": "MesopsEnergyRecommendation",
        "skipped": "MesopsEnergySkipped",
    },
    "plex": {
        "kwh": "expectedEnergyKwh",
        "lower": "expectedEnergyLowerKwh",
        "upper": "expectedEnergyUpperKwh",
        "day": "energyDay",
        "meters": "energyMeters",
        "text": "energyRecommendation",
        "skipped": "energySkipped",
    },
}


def _consumption_block(p: CommittedPrediction) -> dict[str, Any]:
    """One meter's forecast in the ``mesops`` block: its numbers, ids and status (and approval when pending)."""
    block = {
        "meter_id": p.entity_id,
        **{k: p.details.get(k) for k in ("total_kwh", "lower_kwh", "upper_kwh")},
        **_prediction_block(p),
    }
    if p.status == RecommendationStatus.PENDING_APPROVAL:
        block["approval"] = _approval_block(p)
    return block


def _opcenter_order_patch(p: CommittedPrediction) -> tuple[str, dict[str, Any]]:
    return "ProductionOrderPatch", {
        "method": "PATCH",
        "entitySet": "ProductionOrders",
        "key": {"NId": p.entity_id},
        "body": {
            "MesopsExpectedYield": p.details.get("yield_fraction"),
            "MesopsExpectedGoodQuantity": p.details.get("expected_good_qty"),
            "MesopsExtraMaterialQuantity": p.details.get("extra_units"),
            "MesopsRecommendation": p.text,
            "MesopsRecommendationStatus": p.status,
        },
    }


def _opcenter_dispatch_entry(p: CommittedPrediction) -> tuple[str, dict[str, Any]]:
    urgent = p.action_class == "plan_maintenance"
    return "DispatchListEntry", {
        "EquipmentNId": p.entity_id,
        "WorkCenterNId": p.line_id,
        "Priority": "High" if urgent else "Low",
        "Action": "PlanMaintenance" if urgent else "None",
        "Instruction": p.text,
        "FailureRisk": p.details.get("probability"),
        "AlarmLevel": p.details.get("threshold"),
        "Status": p.status,
    }


def _plex_custom_object(p: CommittedPrediction) -> tuple[str, dict[str, Any]]:
    return "CustomObjectRecord", {
        "customObject": "MesopsYieldForecast",
        "record": {
            "jobNo": p.entity_id,
            "lineCode": p.line_id,
            "expectedYield": p.details.get("yield_fraction"),
            "expectedGoodQuantity": p.details.get("expected_good_qty"),
            "extraMaterialQuantity": p.details.get("extra_units"),
            "recommendation": p.text,
            "status": p.status,
        },
    }


def _plex_notification(p: CommittedPrediction) -> tuple[str, dict[str, Any]]:
    urgent = p.action_class == "plan_maintenance"
    return "Notification", {
        "workcenterCode": p.entity_id,
        "recipientRole": "Maintenance Planner",
        "priority": "High" if urgent else "Normal",
        "subject": f"Failure risk {p.entity_id}: {'plan maintenance' if urgent else 'no action'}",
        "message": p.text,
        "failureRisk": p.details.get("probability"),
        "status": p.status,
    }


_BUILDERS = {
    ("opcenter", "yield"): _opcenter_order_patch,
    ("opcenter", "failure"): _opcenter_dispatch_entry,
    ("plex", "yield"): _plex_custom_object,
    ("plex", "failure"): _plex_notification,
}


def _mesops_block(event_id: str, p: CommittedPrediction) -> dict[str, Any]:
    return {"event_id": event_id, **_prediction_block(p)}


def _prediction_block(p: CommittedPrediction) -> dict[str, Any]:
    return {
        "correlation_id": p.correlation_id,
        "recommendation_id": p.recommendation_id,
        "request_id": p.request_id,
        "model": p.model_name,
        "version": p.model_version,
        "phase": p.phase,
        "answered_by": p.answered_by,
        "action_class": p.action_class,
        "status": p.status,
    }


def _approval_block(p: CommittedPrediction) -> dict[str, Any]:
    """What a planner needs to accept, reject or modify a challenger's recommendation."""
    return {
        "recommendation_id": p.recommendation_id,
        "recommendation": p.text,
        "action_class": p.action_class,
        "evidence": {**p.details, "model": p.model_name, "version": p.model_version, "phase": p.phase},
        "decide_with": "POST /v1/feedback {recommendation_id, decision, reason_code[, modified_value]}",
        "decisions": {d.value: [r.value for r in reasons] for d, reasons in ALLOWED_REASONS.items()},
    }
