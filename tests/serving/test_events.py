"""MES event contracts and write-back shapes (pure functions, no broker), and `mesops bridge dead-letters` on a
SQLite platform database."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from governance.recommendations import RecommendationStatus
from mesops import database
from mesops.bridge_tables import DeadLetter
from mesops.cli import app
from serving import writeback
from serving.event_processor import consumption_ids, fixed_ids, meters_by_line, release_day
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


def _energy(meter: str, total: float, status: str = "OPEN") -> writeback.CommittedPrediction:
    return dataclasses.replace(
        _prediction("yield", status),
        request_id=f"evt-{meter}",
        model_name="mesops-consumption",
        entity_id=meter,
        correlation_id=f"{meter}@2026-03-02",
        recommendation_id=f"rec-{meter}",
        action_class="energy_reservation",
        text=f"meter {meter}: reserve",
        details={"total_kwh": total, "lower_kwh": total - 100, "upper_kwh": total + 100, "peak": "x"},
        status=status,
    )


@pytest.mark.parametrize(
    ("source", "fields", "names"),
    [
        ("opcenter", "body", ("MesopsExpectedEnergyKwh", "MesopsExpectedEnergyUpperKwh", "MesopsEnergyDay")),
        ("plex", "record", ("expectedEnergyKwh", "expectedEnergyUpperKwh", "energyDay")),
    ],
)
def test_a_released_orders_write_back_carries_its_lines_expected_energy(
    source: str, fields: str, names: tuple[str, str, str]
) -> None:
    order = _prediction("yield", RecommendationStatus.OPEN.value)
    built = writeback.build_release(
        source, "evt-1", order, [_energy("EM-L1", 3000.0)], date(2026, 3, 2), skipped=[]
    )
    kwh, upper, day = names
    assert built.kind == writeback.build(source, "evt-1", order).kind  # one message, the order's own shape
    assert (built.body[fields][kwh], built.body[fields][upper], built.body[fields][day]) == (
        3000.0,
        3100.0,
        "2026-03-02",
    )
    [energy] = built.body["mesops"]["consumption"]
    assert energy["meter_id"] == "EM-L1" and energy["recommendation_id"] == "rec-EM-L1"
    assert energy["model"] == "mesops-consumption" and energy["total_kwh"] == 3000.0
    assert built.body["mesops"]["recommendation_id"] == "rec-1"  # the yield recommendation stays the head
    assert "consumption_skipped" not in built.body["mesops"]


def test_a_skipped_energy_forecast_says_why_and_leaves_the_numbers_empty() -> None:
    reason = (
        "day: readings of meter 'EM-L1' end on 2025-04-06; the latest day that can be forecast is 2025-04-07"
    )
    built = writeback.build_release(
        "opcenter", "evt-1", _prediction("yield", "OPEN"), [], date(2026, 3, 2), skipped=[reason]
    )
    patch = built.body["body"]
    assert patch["MesopsExpectedEnergyKwh"] is None and patch["MesopsEnergySkipped"] == reason
    assert patch["MesopsExpectedYield"] == 0.9
    assert built.body["mesops"]["consumption"] == [] and built.body["mesops"]["consumption_skipped"] == [
        reason
    ]


def test_several_meters_of_a_line_are_summed_and_each_keeps_its_own_approval() -> None:
    pending = RecommendationStatus.PENDING_APPROVAL.value
    built = writeback.build_release(
        "plex",
        "evt-1",
        _prediction("yield", "OPEN"),
        [_energy("EM-L1a", 1000.0), _energy("EM-L1b", 500.0, status=pending)],
        date(2026, 3, 2),
        skipped=[],
    )
    record = built.body["record"]
    assert (record["expectedEnergyKwh"], record["expectedEnergyLowerKwh"]) == (1500.0, 1300.0)
    assert record["energyMeters"] == "EM-L1a,EM-L1b"
    first, second = built.body["mesops"]["consumption"]
    assert "approval" not in first and second["approval"]["recommendation_id"] == "rec-EM-L1b"
    assert "approval" not in built.body  # the order's own recommendation is not pending


def test_a_release_write_back_refuses_predictions_of_other_models() -> None:
    with pytest.raises(ValueError, match="model: a released order's write-back"):
        writeback.build_release(
            "plex", "evt-1", _prediction("yield", "OPEN"), [_prediction("failure", "OPEN")], date.today(), []
        )


def test_consumption_ids_keep_fixed_ids_for_one_meter_and_differ_per_meter() -> None:
    assert consumption_ids("evt-1", ["EM-L1"]) == {"EM-L1": fixed_ids("evt-1", "consumption")}
    several = consumption_ids("evt-1", ["EM-L1a", "EM-L1b"])
    assert several["EM-L1a"] == fixed_ids("evt-1", "consumption|EM-L1a")
    assert len({ids.request_id for ids in several.values()}) == 2
    assert fixed_ids("evt-1", "consumption") not in several.values()


def test_meters_are_found_per_line_from_the_readings() -> None:
    readings = pd.DataFrame(
        {"meter_id": ["EM-L1", "EM-L1", "EM-L2", "EM-L2b"], "line_id": ["L1", "L1", "L2", "L2"], "kwh": 1.0}
    )
    assert meters_by_line(readings) == {"L1": ["EM-L1"], "L2": ["EM-L2", "EM-L2b"]}
    assert meters_by_line(readings.drop(columns="line_id")) == {} and meters_by_line(None) == {}


def test_the_release_day_is_the_utc_day_of_the_release() -> None:
    late = event("opcenter", "ProductionOrderReleased", ReleasedOn="2026-03-02T23:30:00-02:00")
    assert release_day(parse_event(late)) == date(2026, 3, 3)


# --- mesops bridge dead-letters --------------------------------------------------------------------------
def _dead(url: str, minutes: int, reasons: list[str], event_id: str | None, transport: str = "amqp") -> None:
    with database.session_scope(url) as session:
        session.add(
            DeadLetter(
                transport=transport,
                event_id=event_id,
                source="plex" if event_id else None,
                event_type="JobReleased" if event_id else None,
                reasons=reasons,
                attempts=1,
                body_sha256="0" * 64,
                body_bytes=100 + minutes,
                received_at=datetime(2026, 3, 2, 6, 0, tzinfo=UTC) + timedelta(minutes=minutes),
            )
        )


@pytest.fixture
def dead_letters_db(settings) -> str:  # type: ignore[no-untyped-def]
    url = settings.resolved_database_url
    database.upgrade(url)
    _dead(url, 1, ["data.quantity: greater_than: Input should be greater than 0"], "evt-old")
    _dead(url, 2, ["(body): json: not a JSON document"], None, transport="mqtt")
    _dead(
        url,
        3,
        ["data.quantity: greater_than: Input should be greater than 0", "data.shift: literal_error: 'D'"],
        "evt-new",
    )
    _dead(url, 4, ["machine_id: no sensor readings of machine 'M-NOPE' have been ingested"], "evt-newest")
    return url


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, ["bridge", "dead-letters", *args], env={"COLUMNS": "250"})


def test_dead_letters_are_listed_newest_first_with_counts_by_reason(dead_letters_db: str) -> None:
    result = _run("--limit", "2")
    assert result.exit_code == 0, result.output
    table, counts = result.output.split("by reason")
    assert "newest 2 of 4" in table
    assert table.index("evt-newest") < table.index("evt-new ") and "evt-old" not in table
    assert "M-NOPE" in table and "JobReleased" in table and "104" in table  # reasons and body bytes
    # counts are over every dead letter, by field and rule (not by the values a reason quotes)
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip() for line in counts.splitlines() if "│" in line
    }
    assert rows == {
        "data.quantity: greater_than": "2",
        "data.shift: literal_error": "1",
        "(body): json": "1",
        "machine_id": "1",
    }


def test_dead_letters_can_be_filtered_by_reason_text(dead_letters_db: str) -> None:
    result = _run("--reason-contains", "GREATER_than")
    assert result.exit_code == 0, result.output
    assert "evt-new" in result.output and "evt-old" in result.output and "M-NOPE" not in result.output
    assert "newest 2 of 2" in result.output
    none = _run("--reason-contains", "nothing like this")
    assert none.exit_code == 0 and "no dead letters with a reason containing" in none.output


def test_dead_letter_options_are_refused_where_they_do_not_belong(settings) -> None:  # type: ignore[no-untyped-def]
    consuming = CliRunner().invoke(app, ["bridge", "--limit", "3"])
    assert consuming.exit_code == 2 and "--limit and --reason-contains belong to" in consuming.output
    listing = CliRunner().invoke(app, ["bridge", "dead-letters", "--transport", "mqtt"])
    assert listing.exit_code == 2 and "--transport and --amqp-url are for consuming" in listing.output
    assert _run("--limit", "0").exit_code == 2
