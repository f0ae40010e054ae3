"""Bad input over HTTP and the broker, then the platform database still adds up and the audit trail verifies.

One scenario against the real service (BentoML, shared session fixture) and the real RabbitMQ bridge (the
``plant`` fixture of test_bridge_amqp.py): malformed JSON, wrong types, oversized bodies, unknown machines,
replays and wrong keys each get their clear refusal (a 4xx naming the field and the rule, or a dead letter
with its reasons), and only what was accepted leaves rows behind.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from governance import audit
from mesops import database
from mesops.bridge_tables import DeadLetter, ProcessedEvent
from mesops.cli import app
from mesops.serving_tables import PredictionLogEntry, Recommendation
from tests.serving.test_bridge_amqp import (  # noqa: F401  (plant: the shared fixture)
    AT,
    Plant,
    Running,
    _count,
    _drain,
    _event,
    _released,
    _wait,
    plant,
)

pytestmark = pytest.mark.slow
OVERSIZED = 5 * 2**20  # bytes: far beyond any real request or MES event
LARGE = 2**20  # bytes: under the service's body limit (2 MiB), so the schema judges it
REFUSAL_S = 10.0  # an oversized body is refused within this, not after a hang


# --- HTTP ----------------------------------------------------------------------------------------------
def _problems(response: httpx.Response) -> set[tuple[str, str]]:
    """(field, rule) of each problem in a 400 body ``{"error": "invalid_request", "detail": [...]}``."""
    body = response.json()
    assert response.status_code == 400 and body["error"] == "invalid_request", response.text
    return {(p["field"], p["rule"]) for p in body["detail"]}


def _rows(url: str, column: Any, *where: Any) -> int:
    with database.session_scope(url) as session:
        return int(session.scalar(select(func.count(column)).where(*where)) or 0)


def _flush(service) -> None:  # type: ignore[no-untyped-def]
    """Make the service write its pending prediction log rows (reading recommendations flushes them)."""
    with service.client("ml-engineer") as engineer:
        assert engineer.post("/v1/recommendations", json={"limit": 1}).status_code == 200


def _post_timed(client: httpx.Client, path: str, content: bytes) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    return response, time.monotonic() - started


def _refused_requests(client: httpx.Client, tag: str, limit: int) -> None:
    """Malformed, mistyped, oversized and unknown requests: each a 4xx naming what was wrong."""
    malformed = client.post(
        "/v1/failure/risk",
        content=f'{{"machine_id": "M-01", "correlation_id": "{tag}-malformed", '.encode(),
        headers={"content-type": "application/json"},
    )
    assert ("(body)", "json_invalid") in _problems(malformed)
    not_an_object = client.post("/v1/failure/risk", json=["M-01"])
    assert ("(body)", "model_type") in _problems(not_an_object)
    mistyped = client.post("/v1/failure/risk", json={"machine_id": 7, "correlation_id": [f"{tag}-types"]})
    assert {("machine_id", "string_type"), ("correlation_id", "string_type")} <= _problems(mistyped)
    outcome = client.post("/v1/outcomes", json={"model": "failure", "actual": "yes", "observed_at": 3})
    assert {("actual", "float_parsing"), ("correlation_id", "missing")} <= _problems(outcome)

    # Large (1 MB) bodies under the body limit are refused by the schema (an unknown field, a string over its
    # bound, a batch over MAX_BATCH), quickly and naming the field.
    padded = json.dumps({"machine_id": "M-01", "correlation_id": f"{tag}-big", "pad": "x" * LARGE})
    huge_id = json.dumps({"machine_id": "M-" + "0" * LARGE})
    huge_batch = json.dumps({"requests": [{"machine_id": "M-01"}] * (LARGE // 20)})
    for path, body, problem in (
        ("/v1/failure/risk", padded, ("pad", "extra_forbidden")),
        ("/v1/failure/risk", huge_id, ("machine_id", "string_too_long")),
        ("/v1/failure/risk/batch", huge_batch, ("requests", "too_long")),
    ):
        assert LARGE <= len(body) <= limit
        response, took = _post_timed(client, path, body.encode())
        assert problem in _problems(response) and took < REFUSAL_S, (problem, took)
    _oversized_is_413(client, tag, limit)

    unknown = client.post("/v1/failure/risk", json={"machine_id": "M-99", "correlation_id": f"{tag}-unknown"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    assert unknown.json()["detail"].startswith("machine_id:") and "'M-99'" in unknown.json()["detail"]


def _oversized_is_413(client: httpx.Client, tag: str, limit: int) -> None:
    """A body over the limit is a 413 naming the limit, with a Content-Length (refused unread) and without
    one (an upload in chunks, refused once the limit has arrived); both quickly."""
    padded = json.dumps({"machine_id": "M-01", "correlation_id": f"{tag}-huge", "pad": "x" * OVERSIZED})
    body = padded.encode()
    assert len(body) > limit

    def chunks() -> Iterator[bytes]:  # a generator body: httpx sends it chunked, without a Content-Length
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    expected = {
        "error": "payload_too_large",
        "detail": f"body: at most {limit} bytes (serving_max_body_bytes)",
    }
    for path in ("/v1/failure/risk", "/v1/failure/risk/batch"):
        for content in (body, chunks()):
            started = time.monotonic()
            response = client.post(path, content=content, headers={"content-type": "application/json"})
            took = time.monotonic() - started
            chunked = response.request.headers.get("transfer-encoding") == "chunked"
            assert chunked is not isinstance(content, bytes)
            assert response.status_code == 413, (path, chunked, response.text[:300])
            assert response.json() == expected and took < REFUSAL_S, (path, chunked, took)


def _keys_are_enforced(service, tag: str) -> None:  # type: ignore[no-untyped-def]
    """No key is 401, a key of the wrong role 403; both name the role needed, neither is served."""
    body = {"machine_id": "M-01", "correlation_id": f"{tag}-nokey"}
    anonymous = httpx.post(f"{service.url}/v1/failure/risk", json=body)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["error"] == "unauthorized"
    assert anonymous.json()["required_roles"] == ["integration"]
    with service.client("planner") as planner:
        refused = planner.post("/v1/failure/risk", json={**body, "correlation_id": f"{tag}-planner"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "forbidden" and refused.json()["required_roles"] == ["integration"]
    assert refused.json()["role"] == "planner"
    assert "role 'planner' may not request predictions; needs one of: integration" in refused.json()["detail"]


def _replayed_feedback(service, recommendation_id: str) -> None:  # type: ignore[no-untyped-def]
    """The same decision twice is recorded once; a different one is 409; other roles are 403."""
    accept = {"recommendation_id": recommendation_id, "decision": "accept", "reason_code": "agreed"}
    with service.client("planner") as planner:
        first = planner.post("/v1/feedback", json=accept)
        replay = planner.post("/v1/feedback", json=accept)
        other = planner.post(
            "/v1/feedback", json={**accept, "decision": "reject", "reason_code": "wrong_prediction"}
        )
        mistyped = planner.post("/v1/feedback", json={**accept, "decision": "maybe"})
    with service.client("integration") as integration:
        wrong_role = integration.post("/v1/feedback", json=accept)
    assert first.status_code == 200 and first.json()["recorded"] is True, first.text
    assert replay.status_code == 200 and replay.json()["recorded"] is False
    assert replay.json()["recommendation"] == first.json()["recommendation"]
    assert other.status_code == 409 and other.json()["error"] == "conflict"
    assert "ACCEPTED" in other.json()["detail"] and "cannot reject" in other.json()["detail"]
    assert ("decision", "enum") in _problems(mistyped)
    assert wrong_role.status_code == 403 and wrong_role.json()["required_roles"] == ["planner"]
    decisions = [
        e
        for e in audit.entries(service.settings.resolved_database_url)
        if e.event.evidence.get("recommendation_id") == recommendation_id
    ]
    assert [e.event.action for e in decisions] == ["recommendation.accept"]


def _http_scenario(service) -> None:  # type: ignore[no-untyped-def]
    url = service.settings.resolved_database_url
    tag = f"bad-{uuid.uuid4().hex[:8]}"
    _flush(service)
    logged, recs = _rows(url, PredictionLogEntry.id), _rows(url, Recommendation.recommendation_id)
    with service.client("integration") as client:
        accepted = client.post("/v1/failure/risk", json={"machine_id": "M-01", "correlation_id": f"{tag}-ok"})
        assert accepted.status_code == 200, accepted.text
        _refused_requests(client, tag, service.settings.serving_max_body_bytes)
    _keys_are_enforced(service, tag)
    _replayed_feedback(service, accepted.json()["recommendation"]["recommendation_id"])
    assert httpx.get(f"{service.url}/readyz").status_code == 200  # the bad input left the service serving
    _flush(service)
    # the one accepted request left its row and recommendation; the refused ones left nothing
    assert _rows(url, PredictionLogEntry.id) - logged == 1
    assert _rows(url, Recommendation.recommendation_id) - recs == 1
    assert _rows(url, PredictionLogEntry.id, PredictionLogEntry.correlation_id.like(f"{tag}-%")) == 1
    assert _rows(url, PredictionLogEntry.id, PredictionLogEntry.correlation_id == f"{tag}-ok") == 1
    assert _rows(url, PredictionLogEntry.id, PredictionLogEntry.entity_id == "M-99") == 0


# --- broker --------------------------------------------------------------------------------------------
def _bad_events(site: Plant, t: str) -> dict[str, tuple[bytes, list[str]]]:
    """Each bad event by label: its body and the reason prefixes its dead letter must carry."""
    mistyped = json.loads(_released(site, "opcenter", f"PO-{t}", f"{t}-types"))
    mistyped["data"] |= {"PlannedQuantity": "lots", "Shift": 7}
    machine = site.machines[0]
    status = {"workcenterCode": machine, "status": "down", "startTime": AT}
    oversized = _event(
        "opcenter",
        "EquipmentStatusChanged",
        f"{t}-big",
        {"EquipmentNId": "M-" + "0" * OVERSIZED, "State": "down", "StartTime": AT},
    )
    assert len(oversized) > OVERSIZED
    return {
        "malformed": (b'{"source": "opcenter", "event_type": "ProductionOrderReleased", ', ["(body): json:"]),
        "not-an-object": (b'["opcenter"]', ["(body): type: must be a JSON object"]),
        "mistyped": (
            json.dumps(mistyped).encode(),
            ["data.PlannedQuantity: float_parsing", "data.Shift: literal_error"],
        ),
        "oversized": (oversized, ["(body): too_large:"]),  # over bridge_max_event_bytes: refused unread
        "unknown-machine": (
            _event("plex", "MachineStatusChanged", f"{t}-nomachine", {**status, "workcenterCode": "M-NOPE"}),
            ["machine_id: no sensor readings of machine 'M-NOPE'"],
        ),
        "unknown-type": (
            _event("opcenter", "EquipmentTeleported", f"{t}-type", {"EquipmentNId": machine}),
            ["event_type: unknown: opcenter event 'EquipmentTeleported' version 1 has no contract"],
        ),
        "unknown-version": (
            json.dumps(
                json.loads(_event("plex", "MachineStatusChanged", f"{t}-v9", status)) | {"version": 9}
            ).encode(),
            ["event_type: unknown: plex event 'MachineStatusChanged' version 9 has no contract"],
        ),
        "version-mistyped": (
            json.dumps(
                json.loads(_event("plex", "MachineStatusChanged", f"{t}-vx", status)) | {"version": "one"}
            ).encode(),
            ["version: int_parsing"],
        ),
    }


def _publish_labelled(site: Plant, body: bytes, label: str) -> None:
    """Publish with ``message_id`` = label (the dead letter keeps it, so each is found by its label)."""
    site.channel.basic_publish(
        site.settings.bridge_events_exchange,
        "test.event",
        body,
        pika.BasicProperties(message_id=label, delivery_mode=pika.DeliveryMode.Persistent),
    )


def _dead_letters(site: Plant, expected: int, timeout_s: float = 30.0) -> dict[str, dict[str, Any]]:
    """Headers of the dead letters by ``message_id`` (bodies stay unread: some are not JSON)."""
    letters: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(letters) < expected and time.monotonic() < deadline:
        method, properties, _ = site.channel.basic_get(site.settings.bridge_dead_letter_queue, auto_ack=True)
        if method is None:
            time.sleep(0.05)
            continue
        letters[properties.message_id] = properties.headers
    return letters


def _broker_scenario(site: Plant) -> None:
    t = uuid.uuid4().hex[:10]
    good = _event(
        "plex",
        "MachineStatusChanged",
        f"{t}-ok",
        {"workcenterCode": site.machines[0], "status": "down", "startTime": AT},
    )
    bad = _bad_events(site, t)
    logged, ledger = _count(site, PredictionLogEntry.id), _count(site, ProcessedEvent.event_id)
    dead_before, recs = _count(site, DeadLetter.id), _count(site, Recommendation.recommendation_id)
    with Running(site) as running:
        _publish_labelled(site, good, f"{t}-ok")
        first = _drain(site, site.settings.bridge_writeback_queue, expected=1)
        for label, (body, _) in bad.items():
            _publish_labelled(site, body, label)
        # replayed by the MES: the same event, then the same event id with other data (the id is the key)
        _publish_labelled(site, good, f"{t}-ok")
        _publish_labelled(site, good.replace(b'"down"', b'"idle"'), f"{t}-ok")
        _wait(lambda: running.bridge.counts["dead"] == len(bad) and running.bridge.counts["duplicates"] == 2)
        letters = _dead_letters(site, expected=len(bad))
        again = _drain(site, site.settings.bridge_writeback_queue, expected=0, timeout_s=1.5)
    assert running.error is None and running.bridge.counts["processed"] == 1
    assert [props.message_id for props, _ in first] == [f"{t}-ok"] and again == []

    assert set(letters) == set(bad)
    for label, (_, expected) in bad.items():
        reasons = json.loads(letters[label]["x-mesops-reasons"])
        for prefix in expected:
            assert any(r.startswith(prefix) for r in reasons), (label, prefix, reasons)
        with database.session_scope(site.db) as session:
            row = session.get(DeadLetter, letters[label]["x-mesops-dead-letter-id"])
            assert row is not None and row.reasons == reasons and row.transport == "amqp"
            assert row.body_bytes == len(bad[label][0])
    assert _count(site, DeadLetter.id) - dead_before == len(bad)
    # only the good event left rows: one prediction, one recommendation, one ledger row
    assert _count(site, PredictionLogEntry.id) - logged == 1
    assert _count(site, Recommendation.recommendation_id) - recs == 1
    assert _count(site, ProcessedEvent.event_id) - ledger == 1
    assert _count(site, ProcessedEvent.event_id, ProcessedEvent.event_id == f"{t}-ok") == 1
    assert _count(site, PredictionLogEntry.id, PredictionLogEntry.entity_id.in_(["M-NOPE", f"PO-{t}"])) == 0


# --- afterwards ----------------------------------------------------------------------------------------
def _audit_verifies(home: Path) -> None:
    """``mesops audit verify`` on the installation at ``home`` exits 0."""
    result = CliRunner().invoke(app, ["audit", "verify"], env={"MESOPS_HOME": str(home), "COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Audit trail verifies" in result.output


def test_bad_input_is_refused_and_leaves_the_platform_database_consistent(service, plant: Plant) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _http_scenario(service)
    _broker_scenario(plant)
    _audit_verifies(service.settings.home)
    _audit_verifies(plant.settings.home)


# --- found while writing the scenario (were a 500 and a dead consumer): each now refused cleanly ----------
def _logged_features(service, client: httpx.Client, machine: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The features the service logged for a prediction of ``machine`` from its own context."""
    known = client.post("/v1/failure/risk", json={"machine_id": machine})
    assert known.status_code == 200, known.text
    _flush(service)
    with database.session_scope(service.settings.resolved_database_url) as session:
        return session.scalars(
            select(PredictionLogEntry.features).where(
                PredictionLogEntry.request_id == known.json()["request_id"]
            )
        ).one()


def test_a_feature_of_the_wrong_type_is_400_naming_it(service) -> None:  # type: ignore[no-untyped-def]
    tag = f"features-{uuid.uuid4().hex[:8]}"
    with service.client("integration") as client:
        features = _logged_features(service, client, "M-02")
        numeric = next(name for name, value in features.items() if isinstance(value, float))
        text = next(name for name, value in features.items() if isinstance(value, str))

        def risk(label: str, values: dict[str, Any]) -> httpx.Response:
            body = {"machine_id": "M-02", "correlation_id": f"{tag}-{label}", "features": values}
            return client.post("/v1/failure/risk", json=body)

        as_logged = risk("ok", features)  # the service's own features pass the value rules
        mistyped = risk("mistyped", {**features, numeric: "abc"})
        too_long = risk("long", {**features, text: "x" * 5000})
    assert as_logged.status_code == 200, as_logged.text
    assert mistyped.status_code == 400, mistyped.text
    assert mistyped.json() == {
        "error": "invalid_request",
        "detail": f"features: each value must fit its feature; {numeric} must be a number or null, not text",
    }
    assert too_long.status_code == 400, too_long.text
    assert too_long.json()["detail"] == (
        f"features: each value must fit its feature; {text} must be text of at most 120 characters, not 5000"
    )
    _flush(service)
    url = service.settings.resolved_database_url
    assert _rows(url, PredictionLogEntry.id, PredictionLogEntry.correlation_id.like(f"{tag}-%")) == 1


def test_the_largest_valid_request_is_under_the_body_limit_and_answered(service) -> None:  # type: ignore[no-untyped-def]
    """A batch of 500 with every feature, ids at their longest and numbers at full precision, is a 200."""
    limit = service.settings.serving_max_body_bytes
    with service.client("integration") as client:
        features = _logged_features(service, client, "M-03")
        widest = {
            name: ("x" * 120 if isinstance(value, str) else -12345.678901234567)  # 120: the text bound
            for name, value in features.items()
        }
        requests = [
            {
                "machine_id": f"M-{i % 12 + 1:02d}",
                "correlation_id": f"largest-{uuid.uuid4().hex}-{i:03d}".ljust(200, "x"),
                "features": widest,
            }
            for i in range(500)
        ]
        body = json.dumps({"requests": requests}).encode()
        response, took = _post_timed(client, "/v1/failure/risk/batch", body)
    assert len(body) < limit, f"{len(body)} bytes: the body limit refuses valid requests"
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["results"]) == 500 and took < REFUSAL_S, took


def test_an_event_id_too_long_for_amqp_is_dead_lettered_and_the_bridge_goes_on(plant: Plant) -> None:  # noqa: F811
    tag = f"test-{uuid.uuid4().hex[:8]}"
    scoped_settings = plant.settings.model_copy(  # its own events exchange: the event reaches no other queue
        update={
            "bridge_events_exchange": f"{tag}.events",
            "bridge_events_queue": f"{tag}.events.in",
            "bridge_dead_letter_queue": f"{tag}.dead",
        }
    )
    scoped = Plant(scoped_settings, plant.runtime, plant.channel, plant.machines, plant.order)
    body = _event(
        "plex",
        "MachineStatusChanged",
        "e" * 300,
        {"workcenterCode": plant.machines[0], "status": "down", "startTime": AT},
    )
    try:
        with Running(scoped) as running:
            plant.channel.basic_publish(
                scoped_settings.bridge_events_exchange,
                "test.event",
                body,
                pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            )
            _wait(lambda: running.error is not None or running.bridge.counts["dead"] == 1, timeout_s=30)
        assert running.error is None, repr(running.error)
        [(props, _)] = _drain(scoped, scoped_settings.bridge_dead_letter_queue, expected=1)
        assert json.loads(props.headers["x-mesops-reasons"])[0].startswith("event_id: string_too_long")
    finally:  # the event may be left in its queue: delete it with the queues
        plant.channel.queue_delete(scoped_settings.bridge_events_queue)
        plant.channel.queue_delete(scoped_settings.bridge_dead_letter_queue)
        plant.channel.exchange_delete(scoped_settings.bridge_events_exchange)
