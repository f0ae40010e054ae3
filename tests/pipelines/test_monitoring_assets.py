"""The monitor job: drift report, signals and gate of every model in Dagster, its schedule and feedback sensor.

The job runs in process on the installation's Dagster instance (pipelines.runner.run_monitoring) over a
registry whose failure versions carry a real drift reference, and served traffic written to the platform
database as the service writes it; Evidently runs for real on those rows.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy import insert, update

from governance import audit, drift, gates, promotion, rollout
from governance.drift import DriftError, DriftResult
from governance.lineage import ReferenceSample, reference_parquet
from governance.phase_policy import Phase, load_policies
from governance.registry import Registry
from mesops import database
from mesops.rollout_tables import ModelAlias
from mesops.serving_tables import Outcome, PredictionLogEntry, Recommendation
from mesops.settings import Settings, get_settings
from pipelines.assets.monitoring import DriftOutcome, applicable_signals, monitoring_key
from pipelines.definitions import MONITOR_JOB, build_definitions
from pipelines.monitoring_sensor import FeedbackMark, build_feedback_sensor
from pipelines.resources import PlatformResource
from pipelines.runner import MonitoringRun, run_monitoring
from tests.governance.test_promotion import FRAME, ShareForecaster, _lineage, _report

NAME = "mesops-failure"
FEATURES = ["temp", "vib"]
ENGINEER = {"actor": "ana", "actor_role": "ml-engineer"}
_ids = itertools.count()


# --- definitions ----------------------------------------------------------------------------------------------
def test_definitions_have_the_monitor_job_its_schedule_and_the_feedback_sensor(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = build_definitions(settings)
    job = defs.resolve_job_def(MONITOR_JOB)
    keys = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert keys == {f"monitoring/{t}/{n}" for t in ("failure", "yield", "consumption") for n in _STEPS}
    graph = defs.resolve_asset_graph()
    gate_checks = graph.get_check_keys_for_assets({monitoring_key("failure", "gate")})
    assert {k.name for k in gate_checks} == {"not_rolled_back", "audit_chain_verifies"}
    job_checks = job.asset_layer.asset_graph.asset_check_keys  # the job runs the checks with the assets
    assert set(gate_checks) < job_checks and len(job_checks) == 3 * 3
    schedule = defs.resolve_schedule_def("monitor_schedule")
    assert (schedule.cron_schedule, schedule.job_name) == ("0 * * * *", MONITOR_JOB)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    sensor = defs.resolve_sensor_def("feedback_volume_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.job_name == MONITOR_JOB

    monkeypatch.setenv("MESOPS_MONITORING_CRON", "*/15 * * * *")
    assert build_definitions(get_settings()).resolve_schedule_def("monitor_schedule").cron_schedule == (
        "*/15 * * * *"
    )
    monkeypatch.setenv("MESOPS_MONITORING_CRON", "every hour")
    with pytest.raises(ValidationError, match="monitoring_cron"):
        get_settings()


_STEPS = ("drift_report", "signals", "gate")


# --- the feedback sensor ----------------------------------------------------------------------------------------
def _outcomes(url: str, n: int) -> None:
    now = datetime.now(UTC)
    rows = []
    for _ in range(n):
        k = next(_ids)
        rows.append(
            {
                "model_name": NAME,
                "correlation_id": f"M-01@{k}",
                "entity_id": "M-01",
                "actual": 0.0,
                "observed_at": now,
                "received_at": now,
                "posted_by": "key-1",
            }
        )
    with database.get_engine(url).begin() as connection:
        connection.execute(insert(Outcome), rows)


def _recommendations(url: str, decided: int, open_: int) -> None:
    now = datetime.now(UTC)
    rows = []
    for i in range(decided + open_):
        k = next(_ids)
        rows.append(
            {
                "recommendation_id": f"rec-{k}",
                "request_id": f"req-{k}",
                "model_name": NAME,
                "model_version": "2",
                "phase": "approval",
                "entity_id": "M-01",
                "line_id": "L1",
                "correlation_id": f"M-01@{k}",
                "action_class": "plan_maintenance",
                "text": "plan maintenance",
                "details": {},
                "status": "ACCEPTED" if i < decided else "PENDING",
                "created_at": now - timedelta(minutes=5),
                "decided_at": now + timedelta(microseconds=i) if i < decided else None,
            }
        )
    with database.get_engine(url).begin() as connection:
        connection.execute(insert(Recommendation), rows)


def _tick(settings: Settings, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    sensor = build_feedback_sensor(MONITOR_JOB, 30, 50)
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"platform": PlatformResource(home=str(settings.home))},
    )
    return sensor(context)  # type: ignore[return-value]


def _skip(result: dg.SensorResult) -> str:
    assert not result.run_requests
    assert result.skip_reason is not None
    return result.skip_reason.skip_message or ""


def test_feedback_sensor_requests_a_monitor_run_at_the_threshold_and_moves_its_cursor(
    settings: Settings,
) -> None:
    url = settings.resolved_database_url
    with dg.instance_for_test() as instance:
        assert "no serving tables yet" in _skip(_tick(settings, instance, None))
        database.upgrade(url)
        _outcomes(url, 30)
        _recommendations(url, decided=15, open_=10)  # undecided recommendations are not feedback
        below = _skip(_tick(settings, instance, None))
        assert "15 decisions and 30 outcomes" in below and "needs 50" in below

        _recommendations(url, decided=5, open_=0)
        first = _tick(settings, instance, None)
        [request] = first.run_requests or []
        assert request.tags["mesops/feedback"] == "50" and first.cursor
        mark = FeedbackMark.from_cursor(first.cursor)
        assert mark.outcome_id == 30 and mark.decided_at is not None

        assert "0 decisions and 0 outcomes" in _skip(_tick(settings, instance, first.cursor))
        _outcomes(url, 49)
        assert "0 decisions and 49 outcomes" in _skip(_tick(settings, instance, first.cursor))
        _recommendations(url, decided=1, open_=0)
        second = _tick(settings, instance, first.cursor)
        [again] = second.run_requests or []
        assert again.run_key != request.run_key
        assert FeedbackMark.from_cursor(second.cursor).outcome_id == 79


def test_a_malformed_sensor_cursor_is_named() -> None:
    with pytest.raises(ValueError, match="cursor: expected"):
        FeedbackMark.from_cursor('{"outcome": 3}')


# --- pieces of the assets -----------------------------------------------------------------------------------
def _drift_result(version: str, start: datetime, end: datetime) -> DriftResult:
    return DriftResult(
        model_name=NAME,
        version=version,
        window_start=start,
        window_end=end,
        reference_rows=500,
        current_rows=120,
        features=[],
        share_drifted=0.25,
        drifted_features=["vib"],
        prediction=None,
        html_path=None,
        json_path=None,
        computed_at=end,
    )


def test_the_recorded_drift_runner_refuses_a_report_of_another_window(settings: Settings) -> None:
    end = datetime(2026, 3, 8, tzinfo=UTC)
    start = end - timedelta(days=3)
    subject = gates.Subject(NAME, "failure", "2", "1", Phase.SHADOW, start, start, end)
    made = _drift_result("2", subject.window_start, end)
    source, kept = gates.recorded_drift(made)(settings, subject)
    summary = source()
    assert (summary.share_drifted, summary.prediction_drifted, summary.rows) == (0.25, False, 120)
    assert summary == made.summary()
    assert kept() is not None and (kept() or {})["drifted_features"] == ["vib"]
    older = gates.recorded_drift(_drift_result("2", subject.window_start, end - timedelta(hours=1)))
    with pytest.raises(gates.GateError, match="drift report: made for mesops-failure version 2"):
        older(settings, subject)[0]()
    failed = gates.recorded_drift(DriftError("served rows: 3 rows"))(settings, subject)
    with pytest.raises(DriftError, match="served rows: 3 rows"):
        failed[0]()


def test_only_the_signals_of_the_family_are_kept() -> None:
    from governance.signals import Measurement

    measured = {
        "realized.mae": Measurement(None, 0, "not a signal of the failure forecaster"),
        "realized.pr_auc": Measurement(None, 0, "0 outcomes, 0 failures"),
        "predictions": Measurement(3.0, 3),
    }
    assert list(applicable_signals("failure", measured)) == ["predictions", "realized.pr_auc"]


# --- the monitor job --------------------------------------------------------------------------------------------
def _reference(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "temp": rng.normal(70.0, 5.0, rows) + shift * 5.0,
            "vib": rng.normal(3.0, 0.5, rows) + shift * 0.5,
            "prediction": np.clip(rng.beta(1.5, 8.0, rows), 0.01, 0.99),
        }
    )


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One MLflow store for the module: failure versions 1 and 2, each with a drift reference of two features."""
    root = tmp_path_factory.mktemp("monitoring-mlflow")
    store = (f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
    registry = Registry(*store)
    good = _report(3.0).model_copy(update={"task": "failure"})
    for share in (0.9, 0.95):
        data = reference_parquet(_reference(500, seed=1))
        record = ReferenceSample.of(data, rows=500, seed=1, split="train", source_rows=500, features=FEATURES)
        lineage = _lineage(good).model_copy(update={"reference": record})
        registry.register("failure", ShareForecaster(share), good, lineage, {}, FRAME, reference=data)
    return store


@pytest.fixture
def world(
    settings: Settings, mlflow_store: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Failure version 1 champion and 2 challenger, in shadow for three days; yield and consumption unregistered."""
    monkeypatch.setenv("MESOPS_MLFLOW_TRACKING_URI", mlflow_store[0])
    monkeypatch.setenv("MESOPS_MLFLOW_ARTIFACT_LOCATION", mlflow_store[1])
    settings = get_settings()
    url = settings.resolved_database_url
    database.upgrade(url)
    registry = Registry.from_settings(settings)
    for alias in ("champion", "challenger"):
        registry.delete_alias(NAME, alias)
    promotion.promote(registry, url, NAME, "1", reason="first", **ENGINEER)  # type: ignore[arg-type]
    promotion.promote(registry, url, NAME, "2", alias="challenger", reason="try 2", **ENGINEER)  # type: ignore[arg-type]
    with database.get_engine(url).begin() as connection:
        connection.execute(update(ModelAlias).values(updated_at=datetime.now(UTC) - timedelta(days=3)))
    return {"settings": settings, "url": url, "policies": load_policies(settings.resolved_policies_dir)}


def _serve(url: str, n: int, *, shift: float = 0.0, seed: int = 3) -> None:
    """n shadow requests of the failure model over the last two days, each with its outcome (10 % failures)."""
    rng = np.random.default_rng(seed)
    features = _reference(n, seed=seed + 10, shift=shift)
    actual = (rng.random(n) < 0.1).astype(float)
    good = np.clip(0.7 * actual + 0.15 + rng.normal(0, 0.08, n), 0.01, 0.99)
    start = datetime.now(UTC) - timedelta(days=2)
    logs, outcomes = [], []
    for i in range(n):
        k = next(_ids)
        at = start + timedelta(minutes=15 * i)
        correlation = f"M-{k % 12:02d}@{k}"
        output = {"probability": float(good[i]), "alarm": bool(good[i] >= 0.5), "threshold": 0.5}
        logs.append(
            {
                "request_id": f"req-{k}",
                "created_at": at,
                "endpoint": "/v1/failure/risk",
                "model_name": NAME,
                "phase": "shadow",
                "entity_id": f"M-{k % 12:02d}",
                "correlation_id": correlation,
                "answered_by": "champion",
                "answered_version": "1",
                "champion_version": "1",
                "challenger_version": "2",
                "features": {c: float(features[c].iloc[i]) for c in FEATURES},
                "champion_output": output,
                "challenger_output": output,
                "status": "ok",
                "latency_ms": 2.0,
            }
        )
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
    with database.get_engine(url).begin() as connection:
        connection.execute(insert(PredictionLogEntry), logs)
        connection.execute(insert(Outcome), outcomes)


def _metadata(task: str, step: str) -> dict[str, Any]:
    event = dg.DagsterInstance.get().get_latest_materialization_event(monitoring_key(task, step))
    assert event is not None and event.asset_materialization is not None
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def test_signals_and_gate_judge_only_their_own_runs_report_of_an_unmoved_rollout(
    world: dict[str, Any],
) -> None:
    settings, url = world["settings"], world["url"]
    until = datetime.now(UTC)
    subject = gates.subject_of(url, NAME, until, settings.monitoring_window_days)
    outcome = DriftOutcome("run-a", until, subject, error="served rows: 0 rows")
    assert outcome.checked(settings, "failure", "run-a") == subject
    assert DriftOutcome("run-a", until, skipped="no champion").checked(settings, "failure", "run-a") is None
    with pytest.raises(dg.Failure, match="monitoring/failure/drift_report was made by run run-a"):
        outcome.checked(settings, "failure", "run-b")
    rollout.set_phase(url, NAME, Phase.APPROVAL, world["policies"][NAME], reason="by hand", **ENGINEER)  # type: ignore[arg-type]
    with pytest.raises(dg.Failure, match=r"the rollout moved during the run \(now version 2 in approval"):
        outcome.checked(settings, "failure", "run-a")


def _assert_unmonitored_models_skipped(run: MonitoringRun) -> None:
    for task in ("yield", "consumption"):
        outcome = run.gates[task]
        assert outcome.verdict is None and "has no champion" in (outcome.skipped or "")


@pytest.mark.slow  # the whole monitor job on the Dagster instance
def test_monitor_run_records_and_carries_out_the_verdict_the_cli_would_on_one_drift_report(
    world: dict[str, Any],
) -> None:
    settings, url = world["settings"], world["url"]
    _serve(url, 150)
    cli = gates.evaluate(
        settings, "failure", actor="cli", actor_role="ml-engineer", record=False, policies=world["policies"]
    )
    reports_before = len(drift.history(url, NAME, "2"))
    audit_before = len(list(audit.entries(url)))

    run = run_monitoring(settings)

    assert run.success, run.failed_steps
    failure = run.gates["failure"]
    assert (failure.verdict, failure.action) == (cli.verdict.value, "advanced") == ("advance", "advanced")
    assert failure.detail == "shadow -> approval"
    _assert_unmonitored_models_skipped(run)
    assert {k: v for k, v in run.checks.items() if k.startswith("monitoring/failure")} == {
        "monitoring/failure/drift_report:drift_within_keep_bound": True,
        "monitoring/failure/gate:not_rolled_back": True,
        "monitoring/failure/gate:audit_chain_verifies": True,
    }
    # Evidently ran once, in the drift step; the gate judged on that very report
    [report] = drift.history(url, NAME, "2")[reports_before:]
    [recorded] = gates.history(url, "failure")
    assert recorded.audit_seq == failure.evaluation_audit_seq
    assert recorded.evaluated_by == f"dagster:{run.run_id}"
    assert (recorded.window_start, recorded.window_end) == (report.window_start, report.window_end)
    assert recorded.drift_report is not None and recorded.drift_report["html"] == report.html_path
    # the same conditions, measurements and verdict as `mesops gates evaluate` a moment earlier
    assert [(c.rule, c.status, c.sample) for c in recorded.conditions] == [
        (c.rule, c.status, c.sample) for c in cli.conditions
    ]
    moving = {"days_in_phase"}  # the only signal that depends on the moment of evaluation
    assert [c.value for c in recorded.conditions if c.signal not in moving] == [
        c.value for c in cli.conditions if c.signal not in moving
    ]
    # the audit trail holds what the CLI would have written: the evaluation, then the phase change it caused
    new = list(audit.entries(url))[audit_before:]
    assert [(e.event.action, e.event.actor_role) for e in new] == [
        ("gate_evaluation", "system"),
        ("set_phase", "system"),
    ]
    assert f"gate evaluation #{recorded.audit_seq}" in new[1].event.reason
    assert rollout.view(url, NAME).phase == Phase.APPROVAL and audit.verify(url).ok
    # what the UI shows
    drift_meta = _metadata("failure", "drift_report")
    assert drift_meta["share_drifted"] == report.share_drifted and drift_meta["version"] == "2"
    signals = _metadata("failure", "signals")
    assert signals["predictions"] == 150.0 and "realized.pr_auc.gain" in signals
    assert "realized.mae" not in signals and "realized.mae" not in signals["signals"]  # not a failure signal
    gate = _metadata("failure", "gate")
    assert gate["verdict"] == "advance" and "| keep | drift.share <= 0.5 |" in gate["conditions"]
    assert "has no champion" in _metadata("yield", "gate")["skipped"]


@pytest.mark.slow  # the whole monitor job on the Dagster instance
def test_drifted_inputs_warn_and_the_gate_rolls_the_challenger_back(world: dict[str, Any]) -> None:
    url = world["url"]
    _serve(url, 150, shift=2.0)  # both features two standard deviations off their training values

    run = run_monitoring(world["settings"])

    assert run.success, run.failed_steps  # warnings, not a failed run
    failure = run.gates["failure"]
    assert (failure.verdict, failure.action) == ("roll_back", "rolled_back")
    assert run.checks["monitoring/failure/drift_report:drift_within_keep_bound"] is False
    assert run.checks["monitoring/failure/gate:not_rolled_back"] is False
    assert run.checks["monitoring/failure/gate:audit_chain_verifies"] is True
    [recorded] = gates.history(url, "failure")
    share = next(c for c in recorded.conditions if c.gate == "keep" and c.signal == "drift.share")
    assert (share.status, share.value) == ("fail", 1.0)
    assert _metadata("failure", "drift_report")["drifted_features"] == "temp, vib"
    view = rollout.view(url, NAME)
    assert (view.champion, view.challenger) == ("1", None)
    demoted = [e for e in audit.entries(url, NAME) if e.event.action == "demote"][-1]
    assert f"gate evaluation #{recorded.audit_seq}" in demoted.event.reason and audit.verify(url).ok


@pytest.mark.slow  # the whole monitor job on the Dagster instance
def test_without_served_rows_the_drift_report_says_so_and_below_min_sample_the_gate_holds(
    world: dict[str, Any],
) -> None:
    url = world["url"]
    empty = run_monitoring(world["settings"])  # nothing served yet: no report can be made

    assert empty.success, empty.failed_steps
    assert "served rows: 0 rows" in _metadata("failure", "drift_report")["not_computed"]
    [first] = gates.history(url, "failure")
    share = next(c for c in first.conditions if c.gate == "keep" and c.signal == "drift.share")
    assert share.status == "pending" and share.value is None
    assert share.note.startswith("DriftError: served rows: 0 rows")  # as the CLI's own run would note it

    _serve(url, 12)  # a report is made, but 12 rows are below the policy's min_sample of 30
    run = run_monitoring(world["settings"])

    assert run.success, run.failed_steps
    assert (run.gates["failure"].verdict, run.gates["failure"].action) == ("hold", "held")
    [_, recorded] = gates.history(url, "failure")
    share = next(c for c in recorded.conditions if c.gate == "keep" and c.signal == "drift.share")
    assert share.status == "pending" and share.value is not None and share.sample == 12
    assert (recorded.drift_report or {})["current_rows"] == 12
    assert rollout.view(url, NAME).phase == Phase.SHADOW


@pytest.mark.slow  # the whole monitor job on the Dagster instance
def test_a_model_without_a_policy_fails_its_gate_step_with_the_reason(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "policies"
    empty.mkdir()
    monkeypatch.setenv("MESOPS_POLICIES_DIR", str(empty))
    _serve(world["url"], 12)

    run = run_monitoring(get_settings())

    assert not run.success and run.failed_steps == ["monitoring__failure__gate"]
    assert gates.history(world["url"], "failure") == []  # nothing recorded, nothing moved
    [failure] = [
        e.dagster_event.step_failure_data.error
        for e in dg.DagsterInstance.get().all_logs(run.run_id)
        if e.dagster_event is not None and e.dagster_event.is_step_failure
    ]
    assert failure is not None and "mesops-failure: no phase policy for mesops-failure" in failure.message
    assert run.gates["yield"].skipped  # the other models' steps still ran
