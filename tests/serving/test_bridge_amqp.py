"""The MES event bridge against the real RabbitMQ: one write-back per event, dead letters, idempotency, ack after
commit, energy forecasts on order release, failure outcomes from machine events. Each test module run uses its
own exchanges and queues (deleted afterwards) on the shared broker."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
from sqlalchemy import func, select

from mesops import database
from mesops.bridge_tables import DeadLetter, ProcessedEvent
from mesops.serving_tables import Outcome, PredictionLogEntry, Recommendation
from mesops.settings import Settings, get_settings
from serving.bridge import AmqpBridge, delete_topology
from serving.event_processor import EventProcessor, fixed_ids, meters_by_line
from serving.prediction_log import LogOverloadedError
from serving.runtime import ServingRuntime
from tests.serving.conftest import KEY, Installation

pytestmark = pytest.mark.slow
AT = "2026-03-02T06:15:00Z"


def _rabbitmq_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


def ensure_rabbitmq() -> None:
    """Start the machine's RabbitMQ if it is down (the command the machine documents)."""
    if _rabbitmq_up():
        return
    if shutil.which("rabbitmq-server") is None:
        pytest.fail("RabbitMQ is down and rabbitmq-server is not installed: cannot start it")
    subprocess.run(["rabbitmq-server", "-detached"], check=False)
    for _ in range(120):
        if _rabbitmq_up():
            time.sleep(2)  # the listener opens before the broker accepts logins
            return
        time.sleep(0.5)
    pytest.fail("RabbitMQ did not come up on 127.0.0.1:5672 within 60 s")


@dataclass
class Plant:
    """A trained installation (a copy), its loaded runtime, and a broker connection for the test's side."""

    settings: Settings
    runtime: ServingRuntime
    channel: Any
    machines: list[str]
    order: dict[str, Any]

    @property
    def db(self) -> str:
        return self.settings.resolved_database_url


@pytest.fixture(scope="module")
def plant(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    ensure_rabbitmq()
    home = tmp_path_factory.mktemp("bridge") / "home"
    shutil.copytree(installation.pristine, home)
    tag = f"test-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESOPS_HOME", str(home))
        patch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
        settings = get_settings(
            bridge_events_exchange=f"{tag}.events",
            bridge_events_queue=f"{tag}.events.in",
            bridge_writeback_exchange=f"{tag}.writeback",
            bridge_writeback_queue=f"{tag}.writeback.out",
            bridge_dead_letter_exchange=f"{tag}.dead",
            bridge_dead_letter_queue=f"{tag}.dead",
            bridge_max_attempts=3,
            bridge_retry_delay_s=0.05,
        )
        runtime = ServingRuntime(settings)
        runtime.start()
    connection = pika.BlockingConnection(pika.URLParameters(settings.bridge_amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    context = runtime.require_context()
    first = context.tables["production_orders"].iloc[0]
    order = {c: first[c] for c in ("product_id", "line_id", "planned_qty", "shift", "released_at")}
    try:
        yield Plant(settings, runtime, channel, sorted(context.machines), order)
    finally:
        runtime.close()
        delete_topology(channel, settings)
        connection.close()


class Running:
    """A bridge consuming in a thread until stopped."""

    def __init__(self, plant: Plant, processor: EventProcessor | None = None) -> None:
        self.bridge = AmqpBridge(plant.settings, processor or EventProcessor(plant.runtime))
        self.bridge.connect()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.bridge.run()
        except BaseException as err:  # a simulated crash ends the consumer; the test inspects it
            self.error = err

    def stop(self) -> None:
        self.bridge.stop()
        self.thread.join(timeout=30)
        self.bridge.close()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _event(source: str, event_type: str, event_id: str, data: dict[str, Any]) -> bytes:
    body = {"source": source, "event_type": event_type, "version": 1, "event_id": event_id, "occurred_at": AT}
    return json.dumps({**body, "data": data}).encode()


def _released(plant: Plant, source: str, order_id: str, event_id: str) -> bytes:
    o = plant.order
    released = o["released_at"].tz_localize("UTC").isoformat()
    if source == "opcenter":
        data = {
            "NId": order_id,
            "MaterialNId": o["product_id"],
            "ProductionLineNId": o["line_id"],
            "PlannedQuantity": float(o["planned_qty"]),
            "Shift": o["shift"],
            "ReleasedOn": released,
        }
        return _event("opcenter", "ProductionOrderReleased", event_id, data)
    data = {
        "jobNo": order_id,
        "partNo": o["product_id"],
        "lineCode": o["line_id"],
        "quantity": float(o["planned_qty"]),
        "shift": o["shift"],
        "releaseDate": released,
    }
    return _event("plex", "JobReleased", event_id, data)


def _publish(plant: Plant, body: bytes, routing_key: str = "test.event") -> None:
    plant.channel.basic_publish(
        plant.settings.bridge_events_exchange,
        routing_key,
        body,
        pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json"),
    )


def _drain(
    plant: Plant, queue: str, expected: int, timeout_s: float = 60.0
) -> list[tuple[Any, dict[str, Any]]]:
    """The messages of ``queue``: waits for ``expected`` of them, then a short while for any extra one."""
    got: list[tuple[Any, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    settle: float | None = None
    while time.monotonic() < deadline:
        method, properties, body = plant.channel.basic_get(queue, auto_ack=True)
        if method is not None:
            got.append((properties, json.loads(body) if body.startswith(b"{") else {"raw": body}))
            continue
        if len(got) >= expected:
            settle = settle or time.monotonic() + 1.0
            if time.monotonic() > settle:
                break
        time.sleep(0.05)
    return got


def _count(plant: Plant, column: Any, *where: Any) -> int:
    with database.session_scope(plant.db) as session:
        return int(session.scalar(select(func.count(column)).where(*where)) or 0)


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def test_each_event_type_gives_one_write_back_in_its_shape_and_one_log_row(plant: Plant) -> None:
    t = _tag()
    machine_a, machine_b = plant.machines[0], plant.machines[-1]
    events = {
        f"{t}-po": _released(plant, "opcenter", f"PO-{t}", f"{t}-po"),
        f"{t}-job": _released(plant, "plex", f"J-{t}", f"{t}-job"),
        f"{t}-eq": _event(
            "opcenter",
            "EquipmentStatusChanged",
            f"{t}-eq",
            {"EquipmentNId": machine_a, "State": "down", "StartTime": AT},
        ),
        f"{t}-ms": _event(
            "plex",
            "MachineStatusChanged",
            f"{t}-ms",
            {"workcenterCode": machine_b, "status": "idle", "startTime": AT},
        ),
        f"{t}-su": _event(
            "opcenter", "EquipmentSensorUpdate", f"{t}-su", {"EquipmentNId": machine_a, "Timestamp": AT}
        ),
    }
    closing = {
        f"{t}-op": _event(
            "opcenter",
            "OperationCompleted",
            f"{t}-op",
            {
                "NId": f"OP-{t}",
                "WorkOrderNId": f"PO-{t}",
                "EquipmentNId": machine_a,
                "QuantityGood": 10,
                "ActualEndTime": AT,
            },
        ),
        f"{t}-close": _event(
            "opcenter",
            "ProductionOrderClosed",
            f"{t}-close",
            {"NId": f"PO-{t}", "ProducedQuantity": 42, "ActualEndTime": AT},
        ),
    }
    with Running(plant) as running:
        for body in events.values():
            _publish(plant, body)
        writebacks = _drain(plant, plant.settings.bridge_writeback_queue, expected=len(events))
        for body in closing.values():
            _publish(plant, body)
        _wait(lambda: _count(plant, ProcessedEvent.event_id, ProcessedEvent.event_id.like(f"{t}-%")) == 7)
    assert running.error is None
    by_id = {props.message_id: (props, body) for props, body in writebacks}
    assert len(writebacks) == len(events) and set(by_id) == set(events)
    kinds = {event_id: props.type for event_id, (props, _) in by_id.items()}
    assert kinds == {
        f"{t}-po": "ProductionOrderPatch",
        f"{t}-job": "CustomObjectRecord",
        f"{t}-eq": "DispatchListEntry",
        f"{t}-ms": "Notification",
        f"{t}-su": "DispatchListEntry",
    }
    assert by_id[f"{t}-po"][1]["key"] == {"NId": f"PO-{t}"}
    assert by_id[f"{t}-ms"][1]["workcenterCode"] == machine_b
    for event_id, (props, body) in by_id.items():
        assert props.delivery_mode == pika.DeliveryMode.Persistent.value
        task = "yield" if event_id.endswith(("-po", "-job")) else "failure"
        ids = fixed_ids(event_id, task)
        assert body["mesops"]["recommendation_id"] == ids.recommendation_id
        assert _count(plant, PredictionLogEntry.id, PredictionLogEntry.request_id == ids.request_id) == 1
        assert (
            _count(plant, Recommendation.recommendation_id, Recommendation.request_id == ids.request_id) == 1
        )
    # the closed order's good quantity is the outcome of its yield forecast, joined by the order id
    with database.session_scope(plant.db) as session:
        outcome = session.scalars(select(Outcome).where(Outcome.correlation_id == f"PO-{t}")).one()
        closed = session.get(ProcessedEvent, f"{t}-close")
    assert outcome.actual == 42 and outcome.model_name == "mesops-yield"
    assert closed is not None and closed.outcome is not None and closed.outcome["predictions"] == 1


def _wait(condition: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_bad_events_are_dead_lettered_with_their_reasons_and_counted(plant: Plant) -> None:
    t = _tag()
    bad_quantity = json.loads(_released(plant, "opcenter", f"PO-{t}", f"{t}-bad"))
    bad_quantity["data"]["PlannedQuantity"] = -3
    unknown_machine = _event(
        "plex",
        "MachineStatusChanged",
        f"{t}-nomachine",
        {"workcenterCode": "M-NOPE", "status": "down", "startTime": AT},
    )
    before = _count(plant, DeadLetter.id)
    with Running(plant) as running:
        _publish(plant, json.dumps(bad_quantity).encode())
        _publish(plant, b"\x00 not json")
        _publish(plant, unknown_machine)
        dead = _drain(plant, plant.settings.bridge_dead_letter_queue, expected=3)
    assert running.error is None and running.bridge.counts["dead"] == 3
    reasons = [json.loads(props.headers["x-mesops-reasons"]) for props, _ in dead]
    assert len(dead) == 3
    assert any(r[0].startswith("data.PlannedQuantity: greater_than") for r in reasons)
    assert any(r[0].startswith("(body): json") for r in reasons)
    assert any(r[0].startswith("machine_id:") and "M-NOPE" in r[0] for r in reasons)
    assert _count(plant, DeadLetter.id) == before + 3
    assert _count(plant, DeadLetter.id, DeadLetter.event_id == f"{t}-bad") == 1
    assert _count(plant, PredictionLogEntry.id, PredictionLogEntry.entity_id == f"PO-{t}") == 0
    assert _drain(plant, plant.settings.bridge_writeback_queue, expected=0, timeout_s=1.5) == []


def test_a_replayed_event_gives_no_second_prediction_nor_write_back(plant: Plant) -> None:
    t = _tag()
    body = _released(plant, "plex", f"J-{t}", f"{t}-job")
    with Running(plant) as running:
        _publish(plant, body)
        first = _drain(plant, plant.settings.bridge_writeback_queue, expected=1)
        _publish(plant, body)
        _publish(plant, body)
        _wait(lambda: running.bridge.counts["duplicates"] == 2)
        again = _drain(plant, plant.settings.bridge_writeback_queue, expected=0, timeout_s=1.5)
    assert len(first) == 1 and again == []
    assert _count(plant, PredictionLogEntry.id, PredictionLogEntry.entity_id == f"J-{t}") == 1
    assert _count(plant, Recommendation.recommendation_id, Recommendation.entity_id == f"J-{t}") == 1


class Crash(BaseException):
    """The bridge process dying (not an error the bridge handles)."""


def test_a_crash_between_commit_and_ack_redelivers_and_still_makes_one_recommendation(plant: Plant) -> None:
    t = _tag()
    event_id = f"{t}-po"

    def crash(_event_id: str) -> None:
        raise Crash

    crashing = Running(plant, EventProcessor(plant.runtime, after_commit=crash))
    _publish(plant, _released(plant, "opcenter", f"PO-{t}", event_id))
    crashing.thread.join(timeout=60)
    assert isinstance(crashing.error, Crash)
    crashing.bridge.close()  # the connection drops with the event unacknowledged: RabbitMQ requeues it
    ids = fixed_ids(event_id, "yield")
    assert _count(plant, PredictionLogEntry.id, PredictionLogEntry.request_id == ids.request_id) == 1
    assert _count(plant, ProcessedEvent.event_id, ProcessedEvent.event_id == event_id) == 0
    assert _drain(plant, plant.settings.bridge_writeback_queue, expected=0, timeout_s=1.0) == []

    with Running(plant) as running:
        redelivered = _drain(plant, plant.settings.bridge_writeback_queue, expected=1)
    assert running.error is None
    assert [props.message_id for props, _ in redelivered] == [event_id]
    assert redelivered[0][1]["mesops"]["recommendation_id"] == ids.recommendation_id
    assert _count(plant, PredictionLogEntry.id, PredictionLogEntry.entity_id == f"PO-{t}") == 1
    assert _count(plant, Recommendation.recommendation_id, Recommendation.entity_id == f"PO-{t}") == 1


class Flaky(EventProcessor):
    """A processor whose first ``failures`` tries fail as if the log writer were overloaded."""

    def __init__(self, runtime: ServingRuntime, failures: int) -> None:
        super().__init__(runtime)
        self.failures, self.tries = failures, 0

    def _process_group(self, events: Any) -> Any:
        self.tries += 1
        if self.tries <= self.failures:
            raise LogOverloadedError("prediction log backlog full")
        return super()._process_group(events)


def test_transient_failures_are_retried_then_dead_lettered_after_the_bound(plant: Plant) -> None:
    t = _tag()
    with Running(plant, Flaky(plant.runtime, failures=2)) as running:
        _publish(plant, _released(plant, "plex", f"J-{t}", f"{t}-ok"))
        recovered = _drain(plant, plant.settings.bridge_writeback_queue, expected=1)
    assert [p.message_id for p, _ in recovered] == [f"{t}-ok"] and running.bridge.counts["retried"] == 2

    with Running(plant, Flaky(plant.runtime, failures=99)) as running:
        _publish(plant, _released(plant, "plex", f"J-{t}-x", f"{t}-down"))
        dead = _drain(plant, plant.settings.bridge_dead_letter_queue, expected=1)
    assert running.bridge.counts["retried"] == plant.settings.bridge_max_attempts - 1
    [(props, _)] = dead
    [reason] = json.loads(props.headers["x-mesops-reasons"])
    assert reason.startswith("transient: LogOverloadedError") and "after 3 attempts" in reason
    assert _count(plant, PredictionLogEntry.id, PredictionLogEntry.entity_id == f"J-{t}-x") == 0


# --- order released: yield and energy; machine events: failure outcomes ------------------------------------
def _ledger_row(plant: Plant, event_id: str) -> ProcessedEvent:
    with database.session_scope(plant.db) as session:
        row = session.get(ProcessedEvent, event_id)
        assert row is not None, event_id
        session.expunge(row)
        return row


def _logged_row(plant: Plant, request_id: str) -> PredictionLogEntry:
    with database.session_scope(plant.db) as session:
        row = session.scalars(
            select(PredictionLogEntry).where(PredictionLogEntry.request_id == request_id)
        ).one()
        session.expunge(row)
        return row


def _details(plant: Plant, request_id: str) -> dict[str, Any]:
    with database.session_scope(plant.db) as session:
        rec = session.scalars(select(Recommendation).where(Recommendation.request_id == request_id)).one()
        return dict(rec.details)


def test_an_order_release_gives_a_yield_and_an_energy_forecast_in_one_write_back(plant: Plant) -> None:
    t = _tag()
    po, job = f"{t}-po", f"{t}-job"
    line, day = plant.order["line_id"], plant.order["released_at"].date().isoformat()
    [meter] = meters_by_line(plant.runtime.require_context().tables["energy_readings"])[line]
    with Running(plant) as running:
        _publish(plant, _released(plant, "opcenter", f"PO-{t}", po))
        _publish(plant, _released(plant, "plex", f"J-{t}", job))
        got = _drain(plant, plant.settings.bridge_writeback_queue, expected=2)
    assert running.error is None
    by_id = {props.message_id: body for props, body in got}
    assert sorted(by_id) == sorted([po, job])  # one message per event: the energy rides in the order's
    for event_id in (po, job):
        order_ids, energy_ids = fixed_ids(event_id, "yield"), fixed_ids(event_id, "consumption")
        energy = _logged_row(plant, energy_ids.request_id)
        assert (energy.model_name, energy.entity_id, energy.endpoint) == (
            "mesops-consumption",
            meter,
            "bridge:consumption",
        )
        assert (
            energy.correlation_id == f"{meter}@{day}"
        )  # joins the meter-day's outcome like an HTTP forecast
        assert (
            _count(plant, PredictionLogEntry.id, PredictionLogEntry.request_id == order_ids.request_id) == 1
        )
        ledger = _ledger_row(plant, event_id)
        assert ledger.request_ids == [order_ids.request_id, energy_ids.request_id] and ledger.outcome is None
        [block] = by_id[event_id]["mesops"]["consumption"]
        assert block["recommendation_id"] == energy_ids.recommendation_id and block["meter_id"] == meter
    expected = _details(plant, fixed_ids(po, "consumption").request_id)
    patch = by_id[po]["body"]
    assert patch["MesopsExpectedEnergyKwh"] == expected["total_kwh"] > 0
    assert patch["MesopsExpectedEnergyLowerKwh"] <= patch["MesopsExpectedEnergyKwh"]
    assert patch["MesopsExpectedEnergyUpperKwh"] == expected["upper_kwh"] >= patch["MesopsExpectedEnergyKwh"]
    assert (patch["MesopsEnergyDay"], patch["MesopsEnergyMeters"], patch["MesopsEnergySkipped"]) == (
        day,
        meter,
        None,
    )
    assert patch["MesopsExpectedYield"] is not None  # the yield part is still there
    record = by_id[job]["record"]
    assert record["expectedEnergyKwh"] > 0 and record["energyDay"] == day and record["energyMeters"] == meter


def test_a_release_day_beyond_the_readings_skips_the_energy_part_not_the_event(plant: Plant) -> None:
    t = _tag()
    event_id = f"{t}-late"
    body = json.loads(_released(plant, "plex", f"J-{t}", event_id))
    body["data"]["releaseDate"] = AT  # 2026: long after the last energy reading of the simulated plant
    dead_before = _count(plant, DeadLetter.id)
    with Running(plant) as running:
        _publish(plant, json.dumps(body).encode())
        [(props, written)] = _drain(plant, plant.settings.bridge_writeback_queue, expected=1)
    assert running.error is None and running.bridge.counts["dead"] == 0
    assert props.message_id == event_id and _count(plant, DeadLetter.id) == dead_before
    record = written["record"]
    assert record["expectedYield"] is not None and record["expectedEnergyKwh"] is None
    assert "the latest day that can be forecast" in record["energySkipped"]
    energy_ids = fixed_ids(event_id, "consumption")
    assert _count(plant, PredictionLogEntry.id, PredictionLogEntry.request_id == energy_ids.request_id) == 0
    ledger = _ledger_row(plant, event_id)
    assert ledger.request_ids == [fixed_ids(event_id, "yield").request_id]
    assert ledger.outcome is not None
    [skipped] = ledger.outcome["skipped"]
    assert skipped["task"] == "consumption" and skipped["reason"].startswith("day: readings of meter")


def _sensor(event_id: str, machine: str, at: datetime) -> bytes:
    return _event(
        "opcenter", "EquipmentSensorUpdate", event_id, {"EquipmentNId": machine, "Timestamp": _iso(at)}
    )


def _down(event_id: str, machine: str, at: datetime) -> bytes:
    data = {"workcenterCode": machine, "status": "down", "startTime": _iso(at)}
    return _event("plex", "MachineStatusChanged", event_id, data)


def _completed(event_id: str, machine: str, at: datetime) -> bytes:
    data = {
        "NId": f"OP-{event_id}",
        "WorkOrderNId": "PO-1",
        "EquipmentNId": machine,
        "QuantityGood": 10,
        "ActualEndTime": _iso(at),
    }
    return _event("opcenter", "OperationCompleted", event_id, data)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _failure_outcomes(plant: Plant, correlation_ids: list[str]) -> dict[str, tuple[float, str]]:
    with database.session_scope(plant.db) as session:
        rows = session.scalars(select(Outcome).where(Outcome.correlation_id.in_(correlation_ids)))
        return {o.correlation_id: (o.actual, o.posted_by) for o in rows if o.model_name == "mesops-failure"}


def test_a_down_event_then_operations_completed_resolve_the_right_failure_predictions(plant: Plant) -> None:
    t = _tag()
    a, b = plant.machines[1], plant.machines[2]
    now = datetime.now(UTC)  # the horizon of a logged prediction starts when it was answered
    risks = {f"{t}-a1": a, f"{t}-a2": a, f"{t}-b1": b}
    down, early, done_b, done_a = f"{t}-down", f"{t}-op-a-early", f"{t}-op-b", f"{t}-op-a"
    every = [*risks, down]

    def ledger_has(event_id: str) -> bool:
        return _count(plant, ProcessedEvent.event_id, ProcessedEvent.event_id == event_id) == 1

    with Running(plant) as running:
        for event_id, machine in risks.items():
            _publish(plant, _sensor(event_id, machine, now))
        assert len(_drain(plant, plant.settings.bridge_writeback_queue, expected=3)) == 3
        _publish(plant, _down(down, a, now + timedelta(hours=1)))  # inside the 8 h horizon of a1 and a2
        _wait(lambda: ledger_has(down))
        assert _failure_outcomes(plant, every) == {
            f"{t}-a1": (1.0, "mes-bridge"),
            f"{t}-a2": (1.0, "mes-bridge"),
        }
        _publish(plant, _completed(early, a, now + timedelta(hours=2)))  # no horizon of a has ended yet
        _wait(lambda: ledger_has(early))
        _publish(plant, _completed(done_b, b, now + timedelta(hours=9)))  # b1's horizon ended without failure
        _publish(plant, _completed(done_a, a, now + timedelta(hours=9)))  # so did the down event's own risk
        _wait(lambda: ledger_has(done_a) and ledger_has(done_b))
        resolved = _failure_outcomes(plant, every)
        # replayed by the MES: nothing is scored, published or resolved twice
        outcomes_before = _count(plant, Outcome.id)
        _publish(plant, _down(down, a, now + timedelta(hours=1)))
        _publish(plant, _completed(done_a, a, now + timedelta(hours=9)))
        _wait(lambda: running.bridge.counts["duplicates"] == 2)
        again = _drain(plant, plant.settings.bridge_writeback_queue, expected=1)
    assert running.error is None
    assert [props.message_id for props, _ in again] == [down]  # the down event's own risk write-back, once
    assert resolved == {
        f"{t}-a1": (1.0, "mes-bridge"),
        f"{t}-a2": (1.0, "mes-bridge"),
        f"{t}-b1": (0.0, "mes-bridge"),
        down: (0.0, "mes-bridge"),
    }
    assert _count(plant, Outcome.id) == outcomes_before
    told = {e: _ledger_row(plant, e).outcome for e in (down, early, done_b, done_a)}
    assert {e: (o["actual"], o["predictions"]) for e, o in told.items() if o is not None} == {
        down: (1.0, 2),
        early: (0.0, 0),
        done_b: (0.0, 1),
        done_a: (0.0, 1),
    }
    assert told[down] is not None and told[down]["machine_id"] == a
    assert _count(plant, PredictionLogEntry.id, PredictionLogEntry.correlation_id.in_(every)) == 4
