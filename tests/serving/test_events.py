"""MES event contracts and write-back shapes: pure functions, no broker, no database."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from governance.recommendations import RecommendationStatus
from serving import writeback
from serving.bridge import fixed_ids
from serving.events import SCHEMAS, EventError, parse_event

AT = "2026-03-02T06:15:00Z"
DATA: dict[tuple[str, str], dict[str, Any]] = {
    ("opcenter", "ProductionOrderReleased"): {
        "NId": "PO-9001",
        "MaterialNId": "P-100",
        "ProductionLineNId": "L1",
        "PlannedQuantity": 400,
        "Shift": "A",
        "ReleasedOn": AT,
        "CreatedBy": "planner name, not read",
    },
    ("opcenter", "EquipmentStatusChanged"): {"EquipmentNId": "M-01", "State": "down", "StartTime": AT},
    ("opcenter", "EquipmentSensorUpdate"): {"EquipmentNId": "M-01", "Timestamp": AT},
    ("opcenter", "OperationCompleted"): {
        "NId": "OP-1",
        "WorkOrderNId": "PO-9001",
        "EquipmentNId": "M-01",
        "QuantityGood": 120,
        "ActualEndTime": AT,
    },
    ("opcenter", "ProductionOrderClosed"): {"NId": "PO-9001", "ProducedQuantity": 380, "ActualEndTime": AT},
    ("plex", "JobReleased"): {
        "jobNo": "J-77",
        "partNo": "P-100",
        "lineCode": "L2",
        "quantity": 250,
        "shift": "B",
        "releaseDate": AT,
    },
    ("plex", "MachineStatusChanged"): {"workcenterCode": "M-07", "status": "idle", "startTime": AT},
    ("plex", "SensorUpdate"): {"workcenterCode": "M-07", "timestamp": AT},
    ("plex", "OperationCompleted"): {
        "jobOpKey": "J-77-10",
        "jobNo": "J-77",
        "workcenterCode": "M-07",
        "quantityGood": 60,
        "endDate": AT,
    },
    ("plex", "JobClosed"): {"jobNo": "J-77", "goodQuantity": 240, "completeDate": AT},
}


def event(source: str, event_type: str, event_id: str = "evt-1", **changes: Any) -> bytes:
    """A raw event body of one type, with ``changes`` applied to its data (None removes a field)."""
    data = {**DATA[(source, event_type)], **changes}
    data = {k: v for k, v in data.items() if v is not None}
    envelope = {
        "source": source,
        "event_type": event_type,
        "version": 1,
        "event_id": event_id,
        "occurred_at": AT,
        "data": data,
    }
    return json.dumps(envelope).encode()


def test_every_contract_has_a_valid_example() -> None:
    assert {(s, t) for s, t, _ in SCHEMAS} == set(DATA)


@pytest.mark.parametrize(("source", "event_type"), sorted(DATA))
def test_a_valid_event_of_each_type_parses_into_canonical_fields(source: str, event_type: str) -> None:
    parsed = parse_event(event(source, event_type, event_id=f"{source}-{event_type}"))
    assert (parsed.source, parsed.event_type, parsed.event_id) == (
        source,
        event_type,
        f"{source}-{event_type}",
    )
    if parsed.kind == "order_released":
        assert parsed.order is not None and parsed.order_id
        assert parsed.order.planned_qty == DATA[(source, event_type)].get(
            "PlannedQuantity", DATA[(source, event_type)].get("quantity")
        )
    elif parsed.kind in ("machine_status", "sensor_update"):
        assert parsed.machine_id in ("M-01", "M-07")
    else:
        assert parsed.order_id and parsed.good_qty is not None and parsed.observed_at is not None


def test_vendor_fields_mesops_does_not_read_are_dropped() -> None:
    parsed = parse_event(event("opcenter", "ProductionOrderReleased"))
    assert "planner name" not in parsed.model_dump_json()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            event("opcenter", "ProductionOrderReleased", PlannedQuantity=-5),
            "data.PlannedQuantity: greater_than",
        ),
        (event("opcenter", "ProductionOrderReleased", Shift="D"), "data.Shift: literal_error"),
        (event("opcenter", "ProductionOrderReleased", NId=None), "data.NId: missing"),
        (event("plex", "MachineStatusChanged", status="exploded"), "data.status: literal_error"),
        (event("plex", "JobClosed", completeDate="2026-03-02T06:15:00"), "data.completeDate: timezone_aware"),
        (event("plex", "JobClosed", goodQuantity="many"), "data.goodQuantity: float_parsing"),
        (b"{not json", "(body): json"),
        (b"[1, 2]", "(body): type"),
    ],
)
def test_a_bad_event_names_the_field_and_the_rule(body: bytes, expected: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(body)
    assert any(reason.startswith(expected) for reason in caught.value.reasons), caught.value.reasons


def test_envelope_errors_and_unknown_types_are_named() -> None:
    raw = json.loads(event("plex", "JobClosed"))
    with pytest.raises(EventError) as caught:
        parse_event(json.dumps({**raw, "eventid": "typo", "version": 0}))
    reasons = caught.value.reasons
    assert any(r.startswith("eventid: extra_forbidden") for r in reasons), reasons
    assert any(r.startswith("version: greater_than_equal") for r in reasons), reasons
    with pytest.raises(EventError) as caught:
        parse_event(json.dumps({**raw, "event_type": "JobExploded"}))
    assert caught.value.reasons[0].startswith("event_type: unknown")
    assert caught.value.envelope["event_id"] == raw["event_id"]  # kept for the dead-letter row


def _prediction(task: str, status: str) -> writeback.CommittedPrediction:
    details = (
        {"probability": 0.61, "threshold": 0.4}
        if task == "failure"
        else {"yield_fraction": 0.9, "expected_good_qty": 360.0, "extra_units": 45}
    )
    return writeback.CommittedPrediction(
        request_id="evt-abc",
        model_name=f"mesops-{task}",
        model_version="2",
        phase="approval",
        answered_by="challenger",
        entity_id="M-01" if task == "failure" else "PO-9001",
        line_id="L1",
        correlation_id="evt-1",
        output={},
        recommendation_id="rec-1",
        action_class="plan_maintenance" if task == "failure" else "extra_call_off",
        text="do it",
        details=details,
        status=status,
    )


@pytest.mark.parametrize(
    ("source", "task", "kind"),
    [
        ("opcenter", "yield", "ProductionOrderPatch"),
        ("opcenter", "failure", "DispatchListEntry"),
        ("plex", "yield", "CustomObjectRecord"),
        ("plex", "failure", "Notification"),
    ],
)
def test_write_back_has_the_source_systems_shape(source: str, task: str, kind: str) -> None:
    built = writeback.build(source, "evt-1", _prediction(task, RecommendationStatus.OPEN.value))
    assert (built.kind, built.routing_key) == (kind, f"{source}.{kind}")
    assert built.body["mesops"]["event_id"] == "evt-1"
    assert built.body["mesops"]["recommendation_id"] == "rec-1"
    assert "approval" not in built.body
    text = json.dumps(built.body)
    assert ("PO-9001" in text) == (task == "yield") and ("M-01" in text) == (task == "failure")
    if kind == "ProductionOrderPatch":
        assert built.body["method"] == "PATCH" and built.body["key"] == {"NId": "PO-9001"}
        assert built.body["body"]["MesopsExpectedYield"] == 0.9


def test_pending_approval_write_back_carries_what_a_planner_decides_with() -> None:
    built = writeback.build(
        "plex", "evt-1", _prediction("yield", RecommendationStatus.PENDING_APPROVAL.value)
    )
    approval = built.body["approval"]
    assert approval["recommendation_id"] == "rec-1"
    assert approval["evidence"]["yield_fraction"] == 0.9 and approval["evidence"]["version"] == "2"
    assert set(approval["decisions"]) == {"accept", "reject", "modify"}


def test_no_write_back_shape_is_a_named_error() -> None:
    consumption = dataclasses.replace(_prediction("yield", "OPEN"), model_name="mesops-consumption")
    with pytest.raises(ValueError, match="no write-back shape for plex consumption"):
        writeback.build("plex", "evt-1", consumption)


def test_fixed_ids_are_stable_per_event_and_task_and_fit_the_columns() -> None:
    first, again = fixed_ids("evt-1", "yield"), fixed_ids("evt-1", "yield")
    assert first == again
    assert fixed_ids("evt-2", "yield") != first and fixed_ids("evt-1", "failure") != first
    assert len(first.request_id) <= 40 and len(first.recommendation_id) <= 40


def test_times_in_events_are_utc_aware() -> None:
    parsed = parse_event(event("plex", "JobClosed"))
    assert parsed.observed_at == datetime(2026, 3, 2, 6, 15, tzinfo=UTC)
