"""The six rollout-gate scenarios end to end: the real service, HTTP traffic, planners and outcomes over HTTP.

The service answers failure-risk requests that replay the simulated plant's held-out forecast rows (validation
and test slices, never trained on); outcomes are those rows' real labels, posted to /v1/outcomes; planners
accept or reject over /v1/feedback. The gates run exactly as `mesops gates evaluate` does (governance.gates +
governance.gate_actions, real Evidently drift against the version's training reference), and the serving path
must follow their decisions. A copy of the trained installation and a service of its own keep these rollout
changes away from the service the other tests of this folder share.

The scenarios are one challenger life after another on one plant, in file order: each starts from the state
the previous one left (stated in its first lines).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, update

from governance import audit, gate_actions, gates, promotion, rollout
from governance.api_keys import create_key
from governance.gates import GateEvaluation, Verdict
from governance.phase_policy import Phase, load_policies
from governance.registry import Registry
from mesops import database
from mesops.serving_tables import PredictionLogEntry
from mesops.settings import Settings, get_settings
from mesops.tables import AuditRecord
from models.failure import LABEL, failure_split, train_failure_forecaster
from models.failure_features import feature_names
from pipelines.training import (
    TASK_TABLES,
    curated_tables,
    load_candidate,
    register_candidate,
    save_candidate,
)
from pipelines.zones import ZoneStore
from serving.client import MesopsClient
from serving.server import ServerProcess, free_port
from tests.mesops.test_cli import _mesops
from tests.serving.conftest import KEY, Installation

pytestmark = pytest.mark.slow

MODEL = "mesops-failure"
MONITOR = {"actor": "monitoring", "actor_role": "system"}
# Sensors whose feed was down while the worse challenger was trained: it never learned from them.
MISSING_FEEDS = ("vibration_mm_s", "temp_delta_k")
FOLLOW_TIMEOUT_S = 15.0


@dataclass
class Plant:
    """A trained installation of its own, its running service, keys, and the held-out forecast rows."""

    settings: Settings
    url: str
    keys: dict[str, str]
    rows: pd.DataFrame  # machine_id, forecast_at, label and every feature
    worse: str  # the version trained without two sensor feeds
    good: str  # a second registration of the champion's candidate

    @property
    def db(self) -> str:
        return self.settings.resolved_database_url

    def client(self, role: str) -> MesopsClient:
        return MesopsClient(self.url, self.keys[role])


def _register_worse_model(settings: Settings) -> str:
    """A failure forecaster trained with the vibration and temperature feeds missing (constant): still beats its
    baseline, so it can be promoted, but keeps little of the champion's skill."""
    tables = curated_tables(ZoneStore(settings.home), TASK_TABLES["failure"])
    split = failure_split(tables)
    dead = [c for c in feature_names() if c.startswith(MISSING_FEEDS)]
    blind = replace(
        split,
        train=split.train.assign(**dict.fromkeys(dead, 0.0)),
        validation=split.validation.assign(**dict.fromkeys(dead, 0.0)),
        test=split.test.assign(**dict.fromkeys(dead, 0.0)),
    )
    model, report = train_failure_forecaster(tables, split=blind)
    assert report.baseline.beats_baseline, report.baseline
    original = load_candidate(settings, "failure")
    save_candidate(settings, replace(original, model=model, report=report))
    try:
        return register_candidate(settings, "failure", "worse-challenger", []).version
    finally:
        save_candidate(settings, original)


def _held_out_rows(settings: Settings) -> pd.DataFrame:
    split = failure_split(curated_tables(ZoneStore(settings.home), TASK_TABLES["failure"]))
    rows = pd.concat([split.validation, split.test], ignore_index=True)
    return rows[["machine_id", "forecast_at", LABEL, *feature_names()]]


@pytest.fixture(scope="module")
def plant(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    home = tmp_path_factory.mktemp("gate-scenarios") / "home"
    shutil.copytree(installation.pristine, home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESOPS_HOME", str(home))
        patch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
        patch.setenv("MESOPS_SERVING_REFRESH_S", "0.5")
        settings = get_settings()
        worse = _register_worse_model(settings)
        url = settings.resolved_database_url
        keys = {role: create_key(url, role, f"gates {role}").key for role in ("integration", "planner")}
        process = ServerProcess(settings, port=free_port(), log_path=home / "logs" / "gates.log")
        process.start(ready_timeout_s=180)
        try:
            yield Plant(settings, process.url, keys, _held_out_rows(settings), worse, good="2")
        finally:
            process.stop()


# --- traffic ------------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _serve(
    plant: Plant, tag: str, rows: pd.DataFrame, *, adjust: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """One failure-risk request per row (features as the MES integration sends them); waits for the log."""
    names = feature_names()
    answers = []
    with plant.client("integration") as client:
        for row in rows.itertuples(index=False):
            features = {name: _jsonable(getattr(row, name)) for name in names}
            if adjust is not None:
                adjust(features)
            answers.append(
                client.failure_risk(row.machine_id, correlation_id=_correlation(tag, row), features=features)
            )
    _wait_for_log(plant, tag, len(answers))
    return answers


def _correlation(tag: str, row: Any) -> str:
    return f"{tag}:{row.machine_id}@{pd.Timestamp(row.forecast_at):%Y%m%dT%H%M}"


def _wait_for_log(plant: Plant, tag: str, expected: int, timeout_s: float = 30.0) -> None:
    """The log writer (and its shadow scoring) runs off the request path: wait until every row is written."""
    query = select(func.count()).where(
        PredictionLogEntry.model_name == MODEL, PredictionLogEntry.correlation_id.like(f"{tag}:%")
    )
    deadline = time.monotonic() + timeout_s
    while True:
        with database.session_scope(plant.db) as session:
            written = session.scalar(query)
        if written == expected or time.monotonic() > deadline:
            assert written == expected, f"{written} of {expected} log rows of {tag}"
            return
        time.sleep(0.2)


def _post_outcomes(plant: Plant, tag: str, rows: pd.DataFrame) -> None:
    with plant.client("integration") as client:
        for row in rows.itertuples(index=False):
            at = pd.Timestamp(row.forecast_at)
            observed = (at.tz_localize(UTC) if at.tzinfo is None else at) + pd.Timedelta(hours=8)
            actual = float(getattr(row, LABEL))
            client.outcome("failure", _correlation(tag, row), row.machine_id, actual, observed.isoformat())


def _decide(plant: Plant, answers: list[dict[str, Any]], decision: str, reason: str) -> int:
    """The planner decides every recommendation waiting for approval; returns how many."""
    waiting = [a for a in answers if a["recommendation"]["status"] == "PENDING_APPROVAL"]
    with plant.client("planner") as client:
        for answer in waiting:
            client.feedback(answer["recommendation"]["recommendation_id"], decision, reason)
    return len(waiting)


# --- gates and the serving path --------------------------------------------------------------------------------
def _gate(plant: Plant, after: timedelta = timedelta(0)) -> tuple[GateEvaluation, gate_actions.GateAction]:
    """Evaluate and carry out the gate as `mesops gates evaluate` does, ``after`` the current moment."""
    evaluation = gates.evaluate(
        plant.settings,
        "failure",
        until=datetime.now(UTC) + after,
        **MONITOR,  # type: ignore[arg-type]
    )
    policy = load_policies(plant.settings.resolved_policies_dir)[MODEL]
    return evaluation, gate_actions.apply(plant.settings, evaluation, policy, **MONITOR)  # type: ignore[arg-type]


def _condition(evaluation: GateEvaluation, gate: str, signal: str) -> gates.ConditionResult:
    return next(c for c in evaluation.conditions if c.gate == gate and c.signal == signal)


def _follows(plant: Plant, phase: str, champion: str, probe: pd.Series) -> dict[str, Any]:
    """Ask until the service answers in ``phase`` with ``champion`` as champion (it refreshes every 0.5 s)."""
    names = feature_names()
    features = {name: _jsonable(probe[name]) for name in names}
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    with plant.client("integration") as client:
        while True:
            answer = client.failure_risk(str(probe["machine_id"]), features=features)
            arms = rollout.view(plant.db, MODEL)
            if answer["phase"] == phase and arms.champion == champion:
                if answer["answered_by"] == "champion":
                    assert answer["version"] == champion
                return answer
            assert time.monotonic() < deadline, (
                f"service still answers {answer['phase']} / {answer['version']}"
            )
            time.sleep(0.2)


def _promote(plant: Plant, version: str) -> None:
    promotion.promote(
        Registry.from_settings(plant.settings),
        plant.db,
        MODEL,
        version,
        alias="challenger",
        actor="ana",
        actor_role="ml-engineer",
        reason="e2e scenario",
    )


# --- the scenarios -------------------------------------------------------------------------------------------
def test_scenario_1_a_worse_challenger_in_shadow_is_rolled_back_and_the_champion_keeps_answering(
    plant: Plant,
) -> None:
    _promote(plant, plant.worse)  # champion 1, the worse version in shadow
    _follows(plant, "shadow", "1", plant.rows.iloc[0])
    answers = _serve(plant, "s1", plant.rows)
    assert {(a["answered_by"], a["version"], a["phase"]) for a in answers} == {("champion", "1", "shadow")}
    _post_outcomes(plant, "s1", plant.rows)

    evaluation, action = _gate(plant)

    kept = _condition(evaluation, "keep", "realized.pr_auc.ratio")
    assert kept.status == "fail" and kept.value is not None and kept.value < 0.8
    assert kept.sample == int(plant.rows[LABEL].sum())  # every failure of the replayed rows, paired
    assert evaluation.verdict == Verdict.ROLL_BACK and action.action == "rolled_back"
    assert rollout.view(plant.db, MODEL).challenger is None
    assert _follows(plant, "none", "1", plant.rows.iloc[0])["version"] == "1"


def test_scenario_5_labels_not_yet_matured_hold_the_gate(plant: Plant) -> None:
    _promote(plant, plant.good)  # champion 1, a copy of it in shadow
    _follows(plant, "shadow", "1", plant.rows.iloc[0])
    _serve(plant, "s5", plant.rows)  # no outcome has arrived yet

    evaluation, action = _gate(plant, after=timedelta(days=1.1))

    realized = [c for c in evaluation.conditions if c.signal.startswith("realized.")]
    assert realized and {c.status for c in realized} == {"pending"}
    assert _condition(evaluation, "advance", "predictions").status == "pass"
    assert evaluation.verdict == Verdict.HOLD and action.action == "held"
    assert rollout.view(plant.db, MODEL).phase == Phase.SHADOW


def _approve(plant: Plant, actor: str) -> None:
    result = _mesops(
        plant.settings,
        "approve",
        "failure",
        "--actor",
        actor,
        "--role",
        "governance",
        "--reason",
        "evidence read",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scenario_2_a_good_challenger_goes_from_shadow_to_champion_with_recorded_approvals(
    plant: Plant,
) -> None:
    _post_outcomes(plant, "s5", plant.rows)  # the labels of scenario 5 mature: the shadow gate can pass
    evaluation, action = _gate(plant, after=timedelta(days=1.1))
    assert evaluation.verdict == Verdict.ADVANCE, evaluation.summary()
    assert rollout.view(plant.db, MODEL).phase == Phase.APPROVAL

    for phase, days, approver, needed in (
        (Phase.APPROVAL, 1.1, "gina", 20),
        (Phase.AUTONOMOUS, 2.1, "gustav", 30),
    ):
        tag = f"s2-{phase.value}"
        _follows(plant, phase.value, "1", plant.rows.iloc[0])
        answers = _serve(plant, tag, plant.rows)
        assert any(a["answered_by"] == "challenger" for a in answers)  # its share of machines
        assert _decide(plant, answers, "accept", "agreed") >= needed  # the policy's minimum sample
        _post_outcomes(plant, tag, plant.rows)
        evaluation, action = _gate(plant, after=timedelta(days=days))
        assert evaluation.verdict == Verdict.ADVANCE, evaluation.summary()
        assert action.action == "approval_requested"
        _approve(plant, approver)

    view = rollout.view(plant.db, MODEL)
    assert (view.champion, view.challenger) == (plant.good, None)
    assert _follows(plant, "none", plant.good, plant.rows.iloc[0])["version"] == plant.good
    events = [e.event for e in audit.entries(plant.db, MODEL)]
    approvals = [e for e in events if e.action == "approve"]
    assert [e.actor for e in approvals] == ["gina", "gustav"]
    assert all(e.actor_role == "governance" for e in approvals)


def test_scenario_4_planners_rejecting_in_the_approval_phase_roll_it_back(plant: Plant) -> None:
    _promote(plant, "1")  # the former champion comes back as a challenger, straight into approval
    rollout.set_phase(
        plant.db,
        MODEL,
        Phase.APPROVAL,
        load_policies(plant.settings.resolved_policies_dir)[MODEL],
        actor="ana",
        actor_role="ml-engineer",
        reason="e2e scenario",
    )
    _follows(plant, "approval", plant.good, plant.rows.iloc[0])
    answers = _serve(plant, "s4", plant.rows)
    assert _decide(plant, answers, "reject", "wrong_prediction") >= 20
    _post_outcomes(plant, "s4", plant.rows)

    evaluation, action = _gate(plant, after=timedelta(days=1.1))

    bound = _condition(evaluation, "keep", "acceptance.lower_bound")
    assert bound.status == "fail" and bound.value is not None and bound.value < 0.35
    assert [c.signal for c in evaluation.failed if c.gate == "keep"] == ["acceptance.lower_bound"]
    assert evaluation.verdict == Verdict.ROLL_BACK and action.detail == "approval -> shadow"
    answer = _follows(plant, "shadow", plant.good, plant.rows.iloc[0])
    assert answer["answered_by"] == "champion"


def _recalibrated(features: dict[str, Any]) -> None:
    """A temperature sensor recalibrated in the plant: every temperature reading 5 K higher."""
    for name, value in features.items():
        if name.startswith("temp_delta_k") and "slope" not in name and value is not None:
            features[name] = value + 5.0


def test_scenario_3_a_shifted_sensor_fails_the_drift_gate_and_rolls_the_challenger_back(plant: Plant) -> None:
    assert rollout.view(plant.db, MODEL).phase == Phase.SHADOW  # version 1 in shadow after scenario 4
    _serve(plant, "s3", plant.rows, adjust=_recalibrated)

    evaluation, action = _gate(plant)

    severity = _condition(evaluation, "keep", "drift.severity")
    assert severity.status == "fail" and severity.value is not None and severity.value > 5
    assert "temp_delta_k" in severity.note
    report = evaluation.drift_report or {}
    assert report["worst_feature"].startswith("temp_delta_k") and Path(report["html"]).is_file()
    assert evaluation.verdict == Verdict.ROLL_BACK and action.action == "rolled_back"
    assert _follows(plant, "none", plant.good, plant.rows.iloc[0])["version"] == plant.good


def test_scenario_6_an_edited_gate_decision_is_caught_by_mesops_audit_verify(plant: Plant) -> None:
    [*_, last] = gates.history(plant.db, "failure")  # scenario 3's roll back
    assert _mesops(plant.settings, "audit", "verify").returncode == 0
    forged = last.model_dump(mode="json", exclude={"audit_seq"}) | {"verdict": "hold"}
    with database.get_engine(plant.db).begin() as connection:
        connection.execute(
            update(AuditRecord).where(AuditRecord.seq == last.audit_seq).values(evidence=forged)
        )

    result = _mesops(plant.settings, "audit", "verify")

    assert result.returncode != 0 and f"audit entry {last.audit_seq}" in result.stdout + result.stderr
