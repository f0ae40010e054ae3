"""The prediction service over real HTTP: answers, 4xx bodies, roles, phase routing, feedback, outcomes, log."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from governance import rollout
from governance.phase_policy import Phase, load_policies
from mesops import database
from mesops.serving_tables import PredictionLogEntry
from serving.routing import bucket
from tests.personal_data import find_personal_data

pytestmark = pytest.mark.slow
MACHINES = [f"M-{i:02d}" for i in range(1, 13)]


def _phase(service, phase: Phase) -> None:  # type: ignore[no-untyped-def]
    policies = load_policies(service.settings.resolved_policies_dir)
    rollout.set_phase(
        service.settings.resolved_database_url,
        "mesops-failure",
        phase,
        policies["mesops-failure"],
        actor="test",
        actor_role="ml-engineer",
        reason=f"test {phase.value}",
    )
    deadline = time.monotonic() + 30
    with service.client("ml-engineer") as client:
        while time.monotonic() < deadline:
            if client.post("/v1/rollout").json()["mesops-failure"]["phase"] == phase.value:
                return
            time.sleep(0.2)
    raise AssertionError(f"the service did not pick up phase {phase.value}")


def _risk(client: httpx.Client, machine: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/failure/risk", json={"machine_id": machine, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def _log_rows(service) -> int:  # type: ignore[no-untyped-def]
    with database.session_scope(service.settings.resolved_database_url) as session:
        return int(session.scalar(select(func.count()).select_from(PredictionLogEntry)) or 0)


def test_the_three_forecasters_answer_with_model_version_and_recommendation(service) -> None:  # type: ignore[no-untyped-def]
    with service.client("integration") as client:
        risk = _risk(client, "M-03", correlation_id="evt-1")
        assert risk["model"] == "mesops-failure" and risk["version"] in ("1", "2")
        assert 0 <= risk["probability"] <= 1 and risk["correlation_id"] == "evt-1"
        assert risk["recommendation"]["action_class"] in ("no_action", "plan_maintenance")
        assert "M-03" in risk["recommendation"]["text"]
        orders = client.post("/v1/yield/forecast", json={"order_id": "WO-101247"})
        assert orders.status_code == 200, orders.text
        assert 0 <= orders.json()["yield_fraction"] <= 1 and orders.json()["correlation_id"] == "WO-101247"
        energy = client.post("/v1/consumption/forecast", json={"meter_id": "EM-L1"})
        assert energy.status_code == 200, energy.text
        body = energy.json()
        assert len(body["slots"]) == 96 and body["lower_kwh"] <= body["total_kwh"] <= body["upper_kwh"]
        batch = client.post(
            "/v1/failure/risk/batch", json={"requests": [{"machine_id": m} for m in MACHINES[:4]]}
        )
        assert [r["machine_id"] for r in batch.json()["results"]] == MACHINES[:4]


def test_features_can_be_passed_and_must_be_complete(service) -> None:  # type: ignore[no-untyped-def]
    with service.client("integration") as client:
        with service.client("ml-engineer"):
            pass
        latest = _risk(client, "M-05")
        full = client.post("/v1/failure/risk", json={"machine_id": "M-05"}).json()
        assert full["probability"] == latest["probability"]  # the same context answers the same
        missing = client.post(
            "/v1/failure/risk", json={"machine_id": "M-05", "features": {"torque_nm_last": 40}}
        )
        assert missing.status_code == 400
        assert (
            missing.json()["error"] == "invalid_request"
            and "features: must hold every feature" in missing.json()["detail"]
        )


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"machine_id": "M-01", "surprise": 1}, "surprise", "extra_forbidden"),
        ({}, "machine_id", "missing"),
        ({"machine_id": "M 01; drop"}, "machine_id", "string_pattern_mismatch"),
        ({"machine_id": 7}, "machine_id", "string_type"),
    ],
)
def test_invalid_requests_name_field_and_rule(service, body: dict, field: str, rule: str) -> None:  # type: ignore[no-untyped-def]
    with service.client("integration") as client:
        response = client.post("/v1/failure/risk", json=body)
    assert response.status_code == 400
    problems = response.json()["detail"]
    assert {"field": field, "rule": rule} in [{k: p[k] for k in ("field", "rule")} for p in problems]


def test_unknown_entities_are_404_naming_them(service) -> None:  # type: ignore[no-untyped-def]
    with service.client("integration") as client:
        machine = client.post("/v1/failure/risk", json={"machine_id": "M-99"})
        order = client.post("/v1/yield/forecast", json={"order_id": "WO-999999"})
    assert machine.status_code == 404 and "M-99" in machine.json()["detail"]
    assert order.status_code == 404 and "send its header" in order.json()["detail"]


def test_roles_are_enforced_with_the_role_needed(service) -> None:  # type: ignore[no-untyped-def]
    anonymous = httpx.post(f"{service.url}/v1/failure/risk", json={"machine_id": "M-01"})
    assert anonymous.status_code == 401 and anonymous.json()["required_roles"] == ["integration"]
    wrong = httpx.post(
        f"{service.url}/v1/failure/risk",
        json={"machine_id": "M-01"},
        headers={"X-API-Key": "mk_00000000_nope"},
    )
    assert wrong.status_code == 401
    with service.client("planner") as planner:
        refused = planner.post("/v1/failure/risk", json={"machine_id": "M-01"})
    assert refused.status_code == 403 and refused.json()["required_roles"] == ["integration"]
    with service.client("governance") as governance:
        assert governance.post("/v1/recommendations", json={"limit": 5}).status_code == 200
        decide = governance.post(
            "/v1/feedback", json={"recommendation_id": "rec-x", "decision": "accept", "reason_code": "agreed"}
        )
    assert decide.status_code == 403 and decide.json()["required_roles"] == ["planner"]
    assert httpx.get(f"{service.url}/readyz").status_code == 200  # health needs no key


def test_routing_follows_the_phase_without_a_restart(service) -> None:  # type: ignore[no-untyped-def]
    policy = load_policies(service.settings.resolved_policies_dir)["mesops-failure"]
    with service.client("integration") as client:
        _phase(service, Phase.SHADOW)
        shadow = [_risk(client, m) for m in MACHINES]
        assert {(r["answered_by"], r["phase"], r["recommendation"]["status"]) for r in shadow} == {
            ("champion", "shadow", "OPEN")
        }
        _phase(service, Phase.APPROVAL)
        expected = {
            m: bucket("mesops-failure", "2", m) < policy.challenger_share(Phase.APPROVAL) for m in MACHINES
        }
        for _ in range(2):  # sticky: the same machines go to the challenger every time
            answers = {m: _risk(client, m) for m in MACHINES}
            assert {m: a["answered_by"] == "challenger" for m, a in answers.items()} == expected
        for answer in answers.values():
            status = answer["recommendation"]["status"]
            assert status == ("PENDING_APPROVAL" if answer["answered_by"] == "challenger" else "OPEN")
            assert answer["version"] == ("2" if answer["answered_by"] == "challenger" else "1")
        _phase(service, Phase.AUTONOMOUS)
        for m in MACHINES:
            answer = _risk(client, m)
            if answer["answered_by"] == "challenger":
                low_risk = answer["recommendation"]["action_class"] == "no_action"
                assert answer["recommendation"]["status"] == (
                    "AUTO_APPLIED" if low_risk else "PENDING_APPROVAL"
                )
        _phase(service, Phase.SHADOW)


def test_shadow_scores_are_logged_for_both_arms(service) -> None:  # type: ignore[no-untyped-def]
    _phase(service, Phase.SHADOW)
    with service.client("integration") as client:
        answer = _risk(client, "M-07")
    with service.client("ml-engineer") as engineer:
        engineer.post("/v1/recommendations", json={"limit": 1})  # flushes the log
    with database.session_scope(service.settings.resolved_database_url) as session:
        row = session.scalar(
            select(PredictionLogEntry).where(PredictionLogEntry.request_id == answer["request_id"])
        )
        assert row is not None and row.answered_by == "champion"
        assert row.champion_output["probability"] == pytest.approx(answer["probability"])
        assert row.challenger_output is not None and 0 <= row.challenger_output["probability"] <= 1
        assert row.challenger_version == "2" and row.features["torque_nm_last"] is not None


def test_feedback_is_idempotent_and_refuses_a_second_different_decision(service) -> None:  # type: ignore[no-untyped-def]
    with service.client("integration") as client:
        rec = _risk(client, "M-02")["recommendation"]["recommendation_id"]
    accept = {"recommendation_id": rec, "decision": "accept", "reason_code": "agreed"}
    with service.client("planner") as planner:
        first = planner.post("/v1/feedback", json=accept)
        again = planner.post("/v1/feedback", json=accept)
        other = planner.post(
            "/v1/feedback", json={**accept, "decision": "reject", "reason_code": "wrong_prediction"}
        )
        unknown = planner.post("/v1/feedback", json={**accept, "recommendation_id": "rec-unknown"})
        bad_reason = planner.post("/v1/feedback", json={**accept, "reason_code": "not_feasible"})
    assert first.status_code == 200 and first.json()["recorded"] is True
    assert first.json()["recommendation"]["status"] == "ACCEPTED"
    assert first.json()["recommendation"]["decided_role"] == "planner"
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert other.status_code == 409 and "ACCEPTED" in other.json()["detail"]
    assert unknown.status_code == 404
    assert bad_reason.status_code in (400, 409)


def test_outcomes_join_their_predictions(service) -> None:  # type: ignore[no-untyped-def]
    with service.client("integration") as client:
        _risk(client, "M-04", correlation_id="evt-outcome-1")
        body = {
            "model": "failure",
            "correlation_id": "evt-outcome-1",
            "entity_id": "M-04",
            "actual": 0,
            "observed_at": "2025-04-06T14:00:00Z",
        }
        first = client.post("/v1/outcomes", json=body)
        again = client.post("/v1/outcomes", json=body)
        changed = client.post("/v1/outcomes", json={**body, "actual": 1})
        naive = client.post("/v1/outcomes", json={**body, "observed_at": "2025-04-06T14:00:00"})
    assert first.status_code == 200 and first.json()["predictions"] == 1 and first.json()["recorded"] is True
    assert again.json()["recorded"] is False
    assert changed.status_code == 409
    assert naive.status_code == 400 and naive.json()["detail"][0]["field"] == "observed_at"


def test_no_request_is_lost_across_phase_changes(service) -> None:  # type: ignore[no-untyped-def]
    before = _log_rows(service)
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def traffic() -> None:
        with service.client("integration") as client:
            i = 0
            while not stop.is_set():
                statuses[
                    client.post("/v1/failure/risk", json={"machine_id": MACHINES[i % 12]}).status_code
                ] += 1
                i += 1

    worker = threading.Thread(target=traffic)
    worker.start()
    for phase in (Phase.APPROVAL, Phase.AUTONOMOUS, Phase.SHADOW):
        _phase(service, phase)
    stop.set()
    worker.join()
    with service.client("ml-engineer") as engineer:
        engineer.post("/v1/recommendations", json={"limit": 1})  # flushes the log
    assert set(statuses) == {200} and statuses[200] > 20
    assert _log_rows(service) - before == statuses[200]


def test_prediction_log_and_database_hold_no_personal_data(service, installation) -> None:  # type: ignore[no-untyped-def]
    home = service.settings.home
    assert (
        find_personal_data(
            home,
            installation.roster_values,
            skip=[home / "landing", home / "dagster", home / "logs", home / "secrets"],
        )
        == []
    )


def test_metrics_and_openapi_are_served(service) -> None:  # type: ignore[no-untyped-def]
    metrics = httpx.get(f"{service.url}/metrics").text
    assert "mesops_predictions_total" in metrics and "mesops_prediction_latency_seconds_bucket" in metrics
    spec = httpx.get(f"{service.url}/docs.json").json()
    assert {"/v1/failure/risk", "/v1/feedback", "/v1/outcomes"} <= set(spec["paths"])
    feedback = spec["paths"]["/v1/feedback"]["post"]
    assert feedback["x-mesops-roles"] == ["planner"] and {"ApiKey": []} in feedback["security"]
    assert set(feedback["responses"]) == {"200", "400", "401", "403", "404", "409", "413", "503"}
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"


def test_a_demo_day_is_answered_decided_and_resolved(service) -> None:  # type: ignore[no-untyped-def]
    from serving.demo_day import run_demo_day

    before = _log_rows(service)
    report = run_demo_day(
        service.settings.home, service.url, service.keys["integration"], service.keys["planner"]
    )
    assert not report.errors and report.requests >= 36 + 2  # 12 machines x 3 shifts, meters, the day's orders
    assert {model for model, _ in report.answers} == {"mesops-failure", "mesops-yield", "mesops-consumption"}
    assert sum(report.decisions.values()) > 0
    assert report.outcomes["consumption: posted"] >= 1 and report.outcomes["yield: posted"] >= 1
    with service.client("ml-engineer") as engineer:
        engineer.post("/v1/recommendations", json={"limit": 1})  # flushes the log
    assert _log_rows(service) - before == report.requests


def test_far_dates_are_400_naming_the_field(service) -> None:  # type: ignore[no-untyped-def]
    header = {"product_id": "P-001", "line_id": "L1", "planned_qty": 100, "shift": "A"}
    with service.client("integration") as client:
        order = client.post(
            "/v1/yield/forecast",
            json={"order_id": "WO-1", "order": {**header, "released_at": "2702-11-07T20:32:09Z"}},
        )
        day = client.post("/v1/consumption/forecast", json={"meter_id": "EM-L1", "day": "0061-11-11"})
    assert order.status_code == 400 and order.json()["detail"][0]["field"] == "order.released_at"
    assert day.status_code == 400 and day.json()["detail"][0]["field"] == "day"
