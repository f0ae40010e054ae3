"""Rollout gates on the shipped failure policy: the scenarios of a challenger's life, on the platform database.

Served traffic is written to the prediction log, outcomes and recommendations tables as the service writes
it (one row per request with champion and challenger outputs); drift comes from a stub source so each
scenario states it. The HTTP path that writes those rows is tested in tests/serving.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, update

from governance import audit, gate_actions, gates, promotion, rollout
from governance.gates import GateEvaluation, Verdict
from governance.phase_policy import Condition, Phase, load_policies
from governance.registry import Registry
from governance.signals import DriftSummary, Measurement
from mesops import database
from mesops.serving_tables import Outcome, PredictionLogEntry, Recommendation
from mesops.settings import Settings
from mesops.tables import AuditRecord
from tests.governance.test_promotion import FRAME, ShareForecaster, _lineage, _report

NAME = "mesops-failure"
ENGINEER = {"actor": "ana", "actor_role": "ml-engineer"}
_ids = itertools.count()


@pytest.fixture
def world(settings: Settings) -> dict[str, Any]:
    """Failure versions 1 (champion) and 2 (challenger, in shadow) and the shipped policies."""
    database.upgrade(settings.resolved_database_url)
    registry = Registry.from_settings(settings)
    good = _report(3.0).model_copy(update={"task": "failure"})
    for share in (0.9, 0.95):
        registry.register("failure", ShareForecaster(share), good, _lineage(good), {}, FRAME)
    url = settings.resolved_database_url
    promotion.promote(registry, url, NAME, "1", reason="first", **ENGINEER)  # type: ignore[arg-type]
    promotion.promote(registry, url, NAME, "2", alias="challenger", reason="try 2", **ENGINEER)  # type: ignore[arg-type]
    policies = load_policies(settings.resolved_policies_dir)
    return {"settings": settings, "url": url, "policies": policies}


def _drift(share: float, severity: float = 1.5):  # type: ignore[no-untyped-def]
    summary = DriftSummary(share, False, severity, "temp_delta_k_mean_8h", 500)

    def runner(settings, subject):  # type: ignore[no-untyped-def]
        return (lambda: summary), (lambda: {"share_drifted": share, "severity": severity})

    return runner


def _serve(
    url: str,
    n: int,
    *,
    start: datetime,
    champion_p: np.ndarray,
    challenger_p: np.ndarray,
    actual: np.ndarray | None,
    answered_by: str = "champion",
    phase: str = "shadow",
    statuses: list[str] | None = None,
) -> None:
    """n logged requests (and outcomes, recommendations) of the failure model, one every 10 minutes."""
    logs, outcomes, recs = [], [], []
    for i in range(n):
        k = next(_ids)
        at = start + timedelta(minutes=10 * i)
        correlation = f"M-{k % 12:02d}@{k}"
        champion = {
            "probability": float(champion_p[i]),
            "alarm": bool(champion_p[i] >= 0.5),
            "threshold": 0.5,
        }
        challenger = {
            "probability": float(challenger_p[i]),
            "alarm": bool(challenger_p[i] >= 0.5),
            "threshold": 0.5,
        }
        rec_id = f"rec-{k}"
        logs.append(
            {
                "request_id": f"req-{k}",
                "created_at": at,
                "endpoint": "/v1/failure/risk",
                "model_name": NAME,
                "phase": phase,
                "entity_id": f"M-{k % 12:02d}",
                "correlation_id": correlation,
                "answered_by": answered_by,
                "answered_version": "1" if answered_by == "champion" else "2",
                "champion_version": "1",
                "challenger_version": "2",
                "features": {"temp": 1.0},
                "champion_output": champion,
                "challenger_output": challenger,
                "recommendation_id": rec_id,
                "status": "ok",
                "latency_ms": 2.0,
            }
        )
        if actual is not None:
            outcomes.append(
                {
                    "model_name": NAME,
                    "correlation_id": correlation,
                    "entity_id": f"M-{k % 12:02d}",
                    "actual": float(actual[i]),
                    "observed_at": at + timedelta(hours=8),
                    "received_at": at + timedelta(hours=8),
                    "posted_by": "key-1",
                }
            )
        if statuses is not None:
            recs.append(
                {
                    "recommendation_id": rec_id,
                    "request_id": f"req-{k}",
                    "model_name": NAME,
                    "model_version": "2",
                    "phase": phase,
                    "entity_id": f"M-{k % 12:02d}",
                    "line_id": "L1",
                    "correlation_id": correlation,
                    "action_class": "plan_maintenance",
                    "text": "plan maintenance",
                    "details": {},
                    "status": statuses[i],
                    "created_at": at,
                    "decision": statuses[i].lower(),
                    "reason_code": "agree" if statuses[i] == "ACCEPTED" else "disagree",
                }
            )
    with database.get_engine(url).begin() as connection:
        connection.execute(insert(PredictionLogEntry), logs)
        if outcomes:
            connection.execute(insert(Outcome), outcomes)
        if recs:
            connection.execute(insert(Recommendation), recs)


def _labels(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes with 10 % failures and a good forecaster's probabilities for them."""
    rng = np.random.default_rng(seed)
    actual = (rng.random(n) < 0.1).astype(float)
    good = np.clip(0.7 * actual + 0.15 + rng.normal(0, 0.08, n), 0.01, 0.99)
    return actual, good


def _evaluate(
    world: dict[str, Any],
    until: datetime,
    drift: float = 0.0,
    actor: str = "dagster:sched",
    severity: float = 1.5,
) -> GateEvaluation:
    return gates.evaluate(
        world["settings"],
        "failure",
        actor=actor,
        actor_role="system",
        until=until,
        policies=world["policies"],
        drift_runner=_drift(drift, severity),
    )


def _apply(
    world: dict[str, Any], evaluation: GateEvaluation, actor: str = "dagster:sched"
) -> gate_actions.GateAction:
    return gate_actions.apply(
        world["settings"], evaluation, world["policies"][NAME], actor=actor, actor_role="system"
    )


def _now() -> datetime:
    return datetime.now(UTC)


# --- the pieces ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("measured", "expected"),
    [
        (Measurement(0.7, 40), "pass"),
        (Measurement(0.5, 40), "fail"),
        (Measurement(None, 40, "no reference"), "fail"),  # could not compute fails the condition
        (Measurement(0.9, 10), "pending"),  # too little evidence is never a pass
        (Measurement(None, 0), "pending"),
    ],
)
def test_a_condition_is_pending_below_its_sample_and_fails_when_not_computable(
    measured: Measurement, expected: str
) -> None:
    condition = Condition(signal="acceptance.lower_bound", at_least=0.6, min_sample=20)
    assert gates.judge("advance", condition, measured).status == expected


def test_verdict_rolls_back_on_a_failed_keep_and_advances_only_when_every_advance_passes() -> None:
    def result(gate: str, status: str) -> gates.ConditionResult:
        return gates.ConditionResult(
            gate=gate,
            signal="predictions",
            rule="r",
            value=1,
            threshold=1,
            sample=1,
            min_sample=0,
            status=status,  # type: ignore[arg-type]
        )

    assert gates.verdict([result("advance", "pass"), result("keep", "pass")]) == Verdict.ADVANCE
    assert gates.verdict([result("advance", "pass"), result("advance", "pending")]) == Verdict.HOLD
    assert gates.verdict([result("advance", "pass"), result("keep", "pending")]) == Verdict.ADVANCE
    assert gates.verdict([result("advance", "pass"), result("keep", "fail")]) == Verdict.ROLL_BACK
    assert gates.verdict([result("keep", "pass")]) == Verdict.HOLD  # the champion gate never advances


# --- the scenarios --------------------------------------------------------------------------------------------
def test_scenario_1_a_worse_challenger_in_shadow_is_rolled_back_and_the_champion_keeps_answering(
    world: dict[str, Any],
) -> None:
    n, start = 150, _now() + timedelta(minutes=1)
    actual, good = _labels(n)
    worse = np.random.default_rng(9).uniform(0.01, 0.99, n)  # no skill
    _serve(world["url"], n, start=start, champion_p=good, challenger_p=worse, actual=actual)
    evaluation = _evaluate(world, start + timedelta(days=2))
    kept = next(c for c in evaluation.conditions if c.gate == "keep" and c.signal == "realized.pr_auc.ratio")
    assert kept.status == "fail" and kept.value is not None and kept.value < 0.8
    assert evaluation.verdict == Verdict.ROLL_BACK
    action = _apply(world, evaluation)
    assert action.action == "rolled_back"
    view = rollout.view(world["url"], NAME)
    assert (view.champion, view.challenger) == ("1", None)
    demoted = [e for e in audit.entries(world["url"], NAME) if e.event.action == "demote"][-1]
    assert f"gate evaluation #{evaluation.audit_seq}" in demoted.event.reason


def test_scenario_2_a_good_challenger_goes_to_champion_with_recorded_approvals(world: dict[str, Any]) -> None:
    url, n = world["url"], 150
    actual, good = _labels(n)
    start = _now() + timedelta(minutes=1)
    _serve(url, n, start=start, champion_p=good, challenger_p=good, actual=actual)
    shadow = _evaluate(world, start + timedelta(days=2))
    assert shadow.verdict == Verdict.ADVANCE, shadow.summary()
    assert _apply(world, shadow).detail == "shadow -> approval"  # no human needed to start answering a share

    # approval: planners accept nearly everything the challenger recommends
    start = _now() + timedelta(minutes=1)
    accepted = ["ACCEPTED"] * 38 + ["REJECTED"] * 2
    _serve(
        url,
        40,
        start=start,
        champion_p=good[:40],
        challenger_p=good[:40],
        actual=actual[:40],
        answered_by="challenger",
        phase="approval",
        statuses=accepted,
    )
    approval = _evaluate(world, start + timedelta(days=2))
    assert approval.verdict == Verdict.ADVANCE, approval.summary()
    requested = _apply(world, approval)
    assert requested.action == "approval_requested"
    assert rollout.view(url, NAME).phase == Phase.APPROVAL  # nothing moves before a human approves

    policy = world["policies"][NAME]
    with pytest.raises(gate_actions.ApprovalError, match="requested this advance"):
        gate_actions.approve(
            world["settings"], "failure", policy, actor="dagster:sched", actor_role="governance", reason="me"
        )
    with pytest.raises(gate_actions.ApprovalError, match="may not approve"):
        gate_actions.approve(
            world["settings"], "failure", policy, actor="pat", actor_role="planner", reason="x"
        )
    moved = gate_actions.approve(
        world["settings"], "failure", policy, actor="gia", actor_role="governance", reason="evidence reviewed"
    )
    assert moved.detail == "approval -> autonomous" and rollout.view(url, NAME).phase == Phase.AUTONOMOUS

    # autonomous: two more days of good answers and decisions, then champion with a second approval
    start = _now() + timedelta(minutes=1)
    _serve(
        url,
        40,
        start=start,
        champion_p=good[:40],
        challenger_p=good[:40],
        actual=actual[:40],
        answered_by="challenger",
        phase="autonomous",
        statuses=accepted,
    )
    autonomous = _evaluate(world, start + timedelta(days=3))
    assert autonomous.verdict == Verdict.ADVANCE, autonomous.summary()
    assert _apply(world, autonomous).action == "approval_requested"
    promoted = gate_actions.approve(
        world["settings"], "failure", policy, actor="ana", actor_role="ml-engineer", reason="ok"
    )
    assert promoted.action == "promoted"
    view = rollout.view(url, NAME)
    assert (view.champion, view.challenger) == ("2", None)
    actions = [e.event.action for e in audit.entries(url, NAME)]
    assert actions.count("approve") == 2 and actions.count("approval_requested") == 2
    assert audit.verify(url).ok


def test_scenario_3_drifted_inputs_fail_the_gate_and_roll_the_challenger_back(world: dict[str, Any]) -> None:
    n, start = 150, _now() + timedelta(minutes=1)
    actual, good = _labels(n)
    _serve(world["url"], n, start=start, champion_p=good, challenger_p=good, actual=actual)
    evaluation = _evaluate(world, start + timedelta(days=2), drift=0.6)
    drift = next(c for c in evaluation.conditions if c.gate == "keep" and c.signal == "drift.share")
    assert (drift.status, drift.value) == ("fail", 0.6)
    assert evaluation.verdict == Verdict.ROLL_BACK
    _apply(world, evaluation)
    assert rollout.view(world["url"], NAME).challenger is None


def test_one_sensor_far_off_its_reference_rolls_back_while_the_share_is_low(world: dict[str, Any]) -> None:
    n, start = 150, _now() + timedelta(minutes=1)
    actual, good = _labels(n)
    _serve(world["url"], n, start=start, champion_p=good, challenger_p=good, actual=actual)
    evaluation = _evaluate(world, start + timedelta(days=2), drift=0.1, severity=12.0)
    by_signal = {c.signal: c for c in evaluation.conditions if c.gate == "keep"}
    assert by_signal["drift.share"].status == "pass"
    severity = by_signal["drift.severity"]
    assert (severity.status, severity.value) == ("fail", 12.0) and "temp_delta_k_mean_8h" in severity.note
    assert evaluation.verdict == Verdict.ROLL_BACK


def test_scenario_4_planners_rejecting_most_recommendations_roll_the_challenger_back(
    world: dict[str, Any],
) -> None:
    url = world["url"]
    rollout.set_phase(
        url, NAME, Phase.APPROVAL, world["policies"][NAME], actor="ana", actor_role="ml-engineer", reason="t"
    )
    actual, good = _labels(30)
    start = _now() + timedelta(minutes=1)
    statuses = ["ACCEPTED"] * 4 + ["REJECTED"] * 22 + ["MODIFIED"] * 4
    _serve(
        url,
        30,
        start=start,
        champion_p=good,
        challenger_p=good,
        actual=actual,
        answered_by="challenger",
        phase="approval",
        statuses=statuses,
    )
    evaluation = _evaluate(world, start + timedelta(days=1))
    bound = next(
        c for c in evaluation.conditions if c.gate == "keep" and c.signal == "acceptance.lower_bound"
    )
    assert bound.status == "fail" and bound.sample == 30 and bound.value is not None and bound.value < 0.35
    assert "4 accepted of 30 decided" in bound.note
    assert _apply(world, evaluation).detail == "approval -> shadow"
    assert rollout.view(url, NAME).phase == Phase.SHADOW


def test_scenario_5_without_matured_labels_the_gate_holds(world: dict[str, Any]) -> None:
    n, start = 150, _now() + timedelta(minutes=1)
    _, good = _labels(n)
    _serve(world["url"], n, start=start, champion_p=good, challenger_p=good, actual=None)  # no outcome yet
    evaluation = _evaluate(world, start + timedelta(days=2))
    realized = [c for c in evaluation.conditions if c.signal.startswith("realized.")]
    assert realized and {c.status for c in realized} == {"pending"}
    assert evaluation.verdict == Verdict.HOLD
    assert _apply(world, evaluation).action == "held"
    assert rollout.view(world["url"], NAME).phase == Phase.SHADOW


def test_scenario_6_editing_a_recorded_gate_decision_is_caught_by_audit_verify(world: dict[str, Any]) -> None:
    n, start = 150, _now() + timedelta(minutes=1)
    actual, good = _labels(n)
    _serve(world["url"], n, start=start, champion_p=good, challenger_p=np.full(n, 0.5), actual=actual)
    evaluation = _evaluate(world, start + timedelta(days=2))
    assert evaluation.verdict == Verdict.ROLL_BACK and audit.verify(world["url"]).ok
    [recorded] = gates.history(world["url"], "failure")
    assert recorded.verdict == Verdict.ROLL_BACK and recorded.conditions == evaluation.conditions
    forged = recorded.model_dump(mode="json", exclude={"audit_seq"}) | {"verdict": "advance"}
    with database.get_engine(world["url"]).begin() as connection:
        connection.execute(
            update(AuditRecord).where(AuditRecord.seq == evaluation.audit_seq).values(evidence=forged)
        )
    result = audit.verify(world["url"])
    assert not result.ok and str(evaluation.audit_seq) in str(result.problem)


def test_a_drift_report_that_cannot_be_computed_fails_its_condition(world: dict[str, Any]) -> None:
    def broken(settings, subject):  # type: ignore[no-untyped-def]
        def source() -> DriftSummary:
            raise RuntimeError("no reference sample recorded for version 2")

        return source, lambda: None

    n, start = 150, _now() + timedelta(minutes=1)
    actual, good = _labels(n)
    _serve(world["url"], n, start=start, champion_p=good, challenger_p=good, actual=actual)
    evaluation = gates.evaluate(
        world["settings"],
        "failure",
        actor="a",
        actor_role="system",
        until=start + timedelta(days=2),
        policies=world["policies"],
        drift_runner=broken,
        record=False,
    )
    drift = [c for c in evaluation.conditions if c.signal == "drift.share"]
    assert {c.status for c in drift} == {"fail"} and "no reference sample" in drift[0].note
    assert (
        evaluation.audit_seq is None and gates.history(world["url"], "failure") == []
    )  # a dry run records nothing


def test_the_served_frame_pairs_each_request_with_the_champion(world: dict[str, Any]) -> None:
    from governance.signals import served_rows

    start = _now() + timedelta(minutes=1)
    _serve(
        world["url"],
        3,
        start=start,
        champion_p=np.array([0.1, 0.2, 0.3]),
        challenger_p=np.array([0.4, 0.5, 0.6]),
        actual=np.array([0, 1, 0]),
    )
    subject = gates.subject_of(world["url"], NAME, start + timedelta(days=1), 7.0)
    frame = served_rows(world["url"], subject)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3
    assert [o["probability"] for o in frame["own"]] == [0.4, 0.5, 0.6]
    assert [o["probability"] for o in frame["champion"]] == [0.1, 0.2, 0.3]


def test_the_cli_shows_the_gate_and_refuses_an_approval_with_nothing_pending(world: dict[str, Any]) -> None:
    from tests.mesops.test_cli import _mesops

    settings = world["settings"]  # a challenger just promoted: nothing served yet, so every signal waits
    shown = _mesops(settings, "gates", "evaluate", "failure", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert "realized.pr_auc.gain >= -0.02" in shown.stdout and "pending" in shown.stdout
    assert "dry run: nothing recorded" in shown.stdout
    refused = _mesops(settings, "approve", "failure", "--actor", "gia", "--reason", "why not")
    assert refused.returncode == 2 and "no pending approval request" in refused.stderr
    assert "Traceback" not in refused.stderr
    history = _mesops(settings, "gates", "history", "failure")
    assert history.returncode == 0 and "hold" not in history.stdout  # the dry run recorded nothing
