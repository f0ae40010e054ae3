"""The governance report on a small world: the sections carry the numbers that were served, decided and recorded.

The world is the one of the gate tests (failure version 1 champion, version 2 challenger, versions 3 and 4
registered only; test-double forecasters; prediction log, outcomes and recommendations rows inserted as the
service writes them; a stub drift source), built once for the module. Version 2 lives through shadow ->
approval -> autonomous and is rolled back to shadow when planners reject its recommendations, so the report
has gate decisions, an approval and a rollback to show. Tests that add rows come last and touch only what the
others do not read.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from governance import audit, gate_actions, promotion
from governance.gates import Verdict
from governance.phase_policy import load_policies
from governance.registry import Registry
from governance.report import GovernanceReport, ReportError, build_report, write_report
from governance.signals import wilson_interval
from mesops import database
from mesops.monitoring_tables import DriftReport
from mesops.serving_tables import PredictionLogEntry, Recommendation
from mesops.settings import Settings, get_settings
from tests.governance.test_gates import ENGINEER, NAME, _apply, _evaluate, _labels, _serve
from tests.governance.test_promotion import FRAME, ShareForecaster, _lineage, _report

# A remote resource the browser would fetch: the report must have none.
REMOTE = re.compile(r"""(?:src|href|action|poster)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
KEY = "test-key-0123456789abcdef"


def _world(settings: Settings) -> dict[str, Any]:
    """Failure versions 1 (champion), 2 (challenger, in shadow), 3 and 4 (registered only); shipped policies."""
    url = settings.resolved_database_url
    database.upgrade(url)
    registry = Registry.from_settings(settings)
    good = _report(3.0).model_copy(update={"task": "failure"})
    for share in (0.9, 0.95, 0.97, 0.98):
        registry.register("failure", ShareForecaster(share), good, _lineage(good), {}, FRAME)
    promotion.promote(registry, url, NAME, "1", reason="first", **ENGINEER)  # type: ignore[arg-type]
    promotion.promote(registry, url, NAME, "2", alias="challenger", reason="try 2", **ENGINEER)  # type: ignore[arg-type]
    return {"settings": settings, "url": url, "policies": load_policies(settings.resolved_policies_dir)}


def _live(world: dict[str, Any]) -> dict[str, Any]:
    """Version 2 advances shadow -> approval -> autonomous (one human approval), then is rolled back to shadow."""
    url = world["url"]
    actual, good = _labels(150)
    start = datetime.now(UTC) + timedelta(minutes=1)
    _serve(url, 150, start=start, champion_p=good, challenger_p=good, actual=actual)
    shadow = _evaluate(world, start + timedelta(days=2))
    assert shadow.verdict == Verdict.ADVANCE, shadow.summary()
    _apply(world, shadow)

    start = datetime.now(UTC) + timedelta(minutes=1)
    approval_statuses = ["ACCEPTED"] * 38 + ["REJECTED"] * 2
    kwargs = {"answered_by": "challenger", "actual": actual[:40], "champion_p": good[:40]}
    _serve(
        url, 40, start=start, challenger_p=good[:40], phase="approval", statuses=approval_statuses, **kwargs
    )
    approval = _evaluate(world, start + timedelta(days=2))
    assert approval.verdict == Verdict.ADVANCE, approval.summary()
    _apply(world, approval)
    policy = world["policies"][NAME]
    gate_actions.approve(
        world["settings"], "failure", policy, actor="gia", actor_role="governance", reason="evidence reviewed"
    )

    start = datetime.now(UTC) + timedelta(minutes=1)
    rejected = ["ACCEPTED"] * 4 + ["REJECTED"] * 22 + ["MODIFIED"] * 4
    kwargs = {"answered_by": "challenger", "actual": actual[:30], "champion_p": good[:30]}
    _serve(url, 30, start=start, challenger_p=good[:30], phase="autonomous", statuses=rejected, **kwargs)
    autonomous = _evaluate(world, start + timedelta(days=2))
    assert autonomous.verdict == Verdict.ROLL_BACK, autonomous.summary()
    rolled_back = _apply(world, autonomous)
    assert rolled_back.action == "rolled_back"
    return world | {"evaluations": [shadow, approval, autonomous], "rollback_seq": rolled_back.audit_seq}


@pytest.fixture(scope="module")
def lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One world for the module (registering versions in MLflow is the slow part); tests that add rows say so."""
    home = tmp_path_factory.mktemp("report") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESOPS_HOME", str(home))
        patch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
        for name in ("MESOPS_DATABASE_URL", "MESOPS_DAGSTER_POSTGRES_URL", "DAGSTER_HOME"):
            patch.delenv(name, raising=False)
        yield _live(_world(get_settings()))


@pytest.fixture(scope="module")
def report(lived: dict[str, Any]) -> GovernanceReport:
    return build_report(lived["settings"], "failure")


def _rows(url: str, model: Any, *columns: Any, **where: Any) -> list[tuple[Any, ...]]:
    query = select(*(getattr(model, c) for c in columns)).filter_by(**where)
    with database.session_scope(url) as session:
        return [tuple(r) for r in session.execute(query)]


def _day(moment: datetime) -> str:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.date().isoformat()


# --- the sections carry the real numbers -------------------------------------------------------------------------
def test_it_reports_the_challenger_by_default_with_its_lineage_and_offline_metrics(
    report: GovernanceReport, lived: dict[str, Any]
) -> None:
    assert (report.version.version, report.version.status) == ("2", "challenger in shadow")
    assert report.version.versions == ["1", "2", "3", "4"]
    assert report.lineage.missing_fields == [] and report.lineage.lineage.contracts == [
        "production_orders@1.0.0"
    ]
    assert [(b.table, b.batch_id) for b in report.lineage.batches] == [("production_orders", "B-1")]
    assert report.lineage.attestations_missing == report.lineage.lineage.attestations  # none ingested here
    baseline = report.offline.report.baseline
    assert (baseline.model_value, baseline.baseline_value) == (3.0, 5.0)
    assert report.offline.champion_version == "1" and report.offline.champion_value == 3.0


def test_acceptance_per_day_equals_the_decisions_inserted(
    report: GovernanceReport, lived: dict[str, Any]
) -> None:
    rows = _rows(lived["url"], Recommendation, "status", "created_at", "phase", model_version="2")
    decided = [(s, _day(at), phase) for s, at, phase in rows if s in ("ACCEPTED", "REJECTED", "MODIFIED")]
    by_day: dict[str, Counter[str]] = {}
    for status, day, _ in decided:
        by_day.setdefault(day, Counter())[status] += 1
    got = {d.day.isoformat(): (d.accepted, d.decided) for d in report.acceptance.per_day}
    assert got == {day: (c["ACCEPTED"], sum(c.values())) for day, c in by_day.items()}
    for d in report.acceptance.per_day:
        assert (d.lower, d.upper) == pytest.approx(wilson_interval(d.accepted, d.decided))
    phases = {g.group: (g.accepted, g.decided) for g in report.acceptance.by_phase}
    assert phases == {
        phase: (
            sum(s == "ACCEPTED" for s, _, p in decided if p == phase),
            sum(p == phase for *_, p in decided),
        )
        for phase in {p for *_, p in decided}
    }
    assert report.acceptance.total.decided == len(decided) == 70


def test_shadow_comparison_and_realized_accuracy_are_the_served_numbers(
    report: GovernanceReport, lived: dict[str, Any]
) -> None:
    columns = ("created_at", "champion_output", "challenger_output")
    logs = _rows(lived["url"], PredictionLogEntry, *columns, challenger_version="2")
    per_day: dict[str, list[tuple[dict, dict]]] = {}
    for at, champion, challenger in logs:
        per_day.setdefault(_day(at), []).append((champion, challenger))
    got = {d.day.isoformat(): d for d in report.shadow.per_day}
    assert set(got) == set(per_day)
    for day, pairs in per_day.items():
        disagree = sum(c["alarm"] != o["alarm"] for c, o in pairs)
        assert (got[day].served, got[day].paired, got[day].disagreements) == (
            len(pairs),
            len(pairs),
            disagree,
        )
        assert got[day].mean_own == pytest.approx(np.mean([o["probability"] for _, o in pairs]))
    assert report.shadow.served == len(logs) == 220

    # every request has its outcome: the realized Brier score is the inserted one
    overall = {s.signal: s for s in report.realized.overall}
    assert report.realized.outcomes == 220
    actual, good = _labels(150)
    p = np.concatenate([good, good[:40], good[:30]])
    y = np.concatenate([actual, actual[:40], actual[:30]])
    assert overall["realized.brier"].value == pytest.approx(float(np.mean((p - y) ** 2)))
    assert overall["realized.brier"].sample == 220
    assert sum(d.outcomes for d in report.realized.per_day) == 220


def test_every_gate_decision_is_listed_with_its_conditions(
    report: GovernanceReport, lived: dict[str, Any]
) -> None:
    recorded = lived["evaluations"]
    assert [g.evaluation.audit_seq for g in report.gates] == [e.audit_seq for e in recorded]
    assert [g.evaluation.verdict for g in report.gates] == [
        Verdict.ADVANCE,
        Verdict.ADVANCE,
        Verdict.ROLL_BACK,
    ]
    for shown, evaluation in zip(report.gates, recorded, strict=True):
        assert shown.evaluation.conditions == evaluation.conditions
        assert shown.followed_by  # each was acted on by an audit entry that cites it
    kinds = [(e.action, e.kind) for e in report.governance]
    assert ("approval_requested", "approval") in kinds and ("approve", "approval") in kinds
    approve = next(e for e in report.governance if e.action == "approve")
    assert approve.actor == "gia" and approve.evaluation_seq == recorded[1].audit_seq


def test_the_rollback_is_listed_with_its_evidence_audit_seq(
    report: GovernanceReport, lived: dict[str, Any]
) -> None:
    [rollback] = report.rollbacks
    evaluation = lived["evaluations"][-1]
    assert rollback.seq == lived["rollback_seq"] and rollback.action == "set_phase"
    assert (rollback.evidence["from_phase"], rollback.evidence["to_phase"]) == ("autonomous", "shadow")
    assert rollback.evaluation_seq == evaluation.audit_seq and rollback.evaluation_verdict == "roll_back"
    failed = {c.rule for c in evaluation.failed}
    assert failed and all(any(rule in text for text in rollback.failed_conditions) for rule in failed)
    entry = next(e for e in audit.entries(lived["url"], NAME) if e.seq == rollback.seq)
    assert f"gate evaluation #{evaluation.audit_seq}" in entry.event.reason
    assert report.audit.verification.ok and report.audit.verification.entries >= rollback.seq


def test_the_champion_report_points_at_the_challengers_that_ran_against_it(lived: dict[str, Any]) -> None:
    champion = build_report(lived["settings"], "mesops-failure", "champion")
    assert (champion.version.version, champion.version.status) == ("1", "champion")
    assert champion.shadow.paired == 0 and champion.shadow.challengers_against == ["2"]
    assert "challenger(s) 2" in champion.shadow.note
    assert champion.gates == [] and champion.rollbacks == []
    assert [e.action for e in champion.governance] == ["promote"]
    assert champion.acceptance.note == "no recommendations made by this version yet"
    # it answered the shadow requests alone: realized accuracy without comparisons with a champion
    signals = [s.signal for s in champion.realized.overall]
    assert "realized.brier" in signals and not [s for s in signals if s.endswith((".gain", ".ratio"))]
    assert champion.realized.outcomes == 150


def test_empty_sections_say_why(lived: dict[str, Any]) -> None:
    report = build_report(lived["settings"], "failure", "3")
    assert report.version.status == "no alias (retired or never promoted)"
    assert report.shadow.note == "no served traffic yet" and report.shadow.per_day == []
    assert report.realized.note == "no served traffic yet"
    assert report.drift.note.startswith("no drift report of this version yet")
    assert report.acceptance.note == "no recommendations made by this version yet"
    assert report.gates == [] and [e.action for e in report.governance] == []


def test_served_without_outcomes_says_none_matured(lived: dict[str, Any]) -> None:
    """Adds log rows answered by version 4 (no other version's report reads them)."""
    start = datetime.now(UTC)
    rows = [
        {
            "request_id": f"req-v4-{i}",
            "created_at": start + timedelta(minutes=i),
            "endpoint": "/v1/failure/risk",
            "model_name": NAME,
            "phase": "none",
            "entity_id": "M-01",
            "correlation_id": f"M-01@v4-{i}",
            "answered_by": "champion",
            "answered_version": "4",
            "features": {"temp": 1.0},
            "champion_output": {"probability": 0.2, "alarm": False, "threshold": 0.5},
            "status": "ok",
            "latency_ms": 2.0,
        }
        for i in range(5)
    ]
    with database.get_engine(lived["url"]).begin() as connection:
        connection.execute(insert(PredictionLogEntry), rows)
    report = build_report(lived["settings"], "failure", "4")
    assert report.shadow.served == 5 and report.shadow.paired == 0
    assert report.realized.note == "no outcomes matured yet" and report.realized.outcomes == 0


# --- the files -------------------------------------------------------------------------------------------
def _drift_row(settings: Settings, url: str) -> Path:
    folder = settings.reports_dir / "drift" / NAME / "2"
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / "20250101T000000000000Z.html"
    html.write_text("<html>evidently</html>")
    now = datetime.now(UTC)
    feature = {"feature": "temp", "method": "K-S p_value", "score": 0.01, "threshold": 0.05, "drifted": True}
    row = {
        "model_name": NAME,
        "model_version": "2",
        "window_start": now - timedelta(days=7),
        "window_end": now,
        "reference_rows": 500,
        "current_rows": 220,
        "feature_count": 1,
        "drifted_count": 1,
        "share_drifted": 1.0,
        "drifted_features": ["temp"],
        "prediction_drifted": False,
        "features": [feature],
        "prediction": None,
        "html_path": str(html),
        "json_path": None,
        "computed_at": now,
    }
    with database.get_engine(url).begin() as connection:
        connection.execute(insert(DriftReport), [row])
    return html


def test_the_html_is_self_contained_and_links_its_evidence(lived: dict[str, Any]) -> None:
    settings = lived["settings"]
    drift_html = _drift_row(settings, lived["url"])
    report = build_report(settings, "failure")
    html_path, json_path = write_report(settings, report)
    assert html_path.parent == settings.reports_dir / "governance" / NAME / "2"
    assert html_path.name.endswith("Z.html") and json_path.with_suffix(".html") == html_path
    html = html_path.read_text()
    assert not REMOTE.search(html), REMOTE.search(html)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert html.count("<svg") == 5  # offline, shadow, drift, acceptance, realized
    # the drift report is linked relative to the report's folder, and resolves to the file
    [link] = re.findall(r'href="([^"#]+\.html)"', html)
    assert not link.startswith("/") and (html_path.parent / link).resolve() == drift_html.resolve()
    # every gate decision and the rollback are anchored by audit seq, and the rollback links its evaluation
    for gate in report.gates:
        assert f'id="audit-{gate.evaluation.audit_seq}"' in html
    [rollback] = report.rollbacks
    assert f'id="audit-{rollback.seq}"' in html and f'href="#audit-{rollback.evaluation_seq}"' in html
    document = json.loads(json_path.read_text())
    assert GovernanceReport.model_validate(document) == report
    assert document["drift"]["reports"][0]["html_path"] == str(drift_html.relative_to(settings.reports_dir))
    assert len(html.encode()) < 400_000


def test_html_escapes_what_it_shows(lived: dict[str, Any]) -> None:
    settings = lived["settings"]
    audit.append(
        lived["url"],
        audit.AuditEvent(
            actor="<b>eve</b>",
            actor_role="governance",
            action="note",
            model_name=NAME,
            model_version="2",
            reason='<script>alert("x")</script>',
        ),
    )
    html_path, _ = write_report(settings, build_report(settings, "failure"))
    html = html_path.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;eve&lt;/b&gt;" in html


def test_planner_comments_stay_out_of_the_report(lived: dict[str, Any]) -> None:
    """Adds a recommendation of version 4 and a planner's decision on it with a comment naming a person."""
    from governance.recommendations import decide

    now = datetime.now(UTC)
    row = {
        "recommendation_id": "rec-v4",
        "request_id": "req-v4-0",
        "model_name": NAME,
        "model_version": "4",
        "phase": "none",
        "entity_id": "M-01",
        "line_id": "L2",
        "correlation_id": "M-01@v4-0",
        "action_class": "plan_maintenance",
        "text": "plan maintenance",
        "details": {},
        "status": "OPEN",
        "created_at": now,
    }
    with database.get_engine(lived["url"]).begin() as connection:
        connection.execute(insert(Recommendation), [row])
    comment = "phoned Jana Novakova about it"
    decide(lived["url"], "rec-v4", "accept", "agreed", comment=comment, key_id="key-7", role="planner")
    assert any(comment in e.event.reason for e in audit.entries(lived["url"], NAME))  # the trail keeps it

    report = build_report(lived["settings"], "failure", "4")
    assert report.acceptance.total.accepted == 1 and report.acceptance.by_line[0].group == "L2"
    assert report.audit.decisions_audited == {"recommendation.accept": 1}
    html_path, json_path = write_report(lived["settings"], report)
    for text in (html_path.read_text(), json_path.read_text()):
        assert "Novakova" not in text and "phoned" not in text


# --- errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "version", "named"),
    [
        ("nope", None, "model 'nope': unknown; must be one of failure, yield, consumption"),
        ("failure", "9", "version '9': mesops-failure has no such version (registered: 1, 2, 3, 4"),
        ("failure", "latest", "version 'latest'"),
        ("yield", None, "mesops-yield: no registered version yet"),
    ],
)
def test_unknown_model_or_version_is_a_clear_error(
    lived: dict[str, Any], model: str, version: str | None, named: str
) -> None:
    with pytest.raises(ReportError) as raised:
        build_report(lived["settings"], model, version)
    assert named in str(raised.value)


def _cli(settings: Settings, *args: str) -> Any:
    from mesops.cli import app

    env = {"MESOPS_HOME": str(settings.home), "MESOPS_PSEUDONYM_KEY": KEY, "COLUMNS": "200"}
    return CliRunner().invoke(app, ["report", *args], env=env | {"MESOPS_DATABASE_URL": None})


def test_the_cli_writes_the_report_and_exits_2_on_unknown_names(lived: dict[str, Any]) -> None:
    written = _cli(lived["settings"], "failure")
    assert written.exit_code == 0, written.output
    html = re.search(r"html: (\S+\.html)", written.stdout)
    assert html and Path(html.group(1)).is_file() and "rollbacks: 1" in written.stdout
    for args, named in ((("nope",), "model 'nope'"), (("failure", "9"), "version '9'")):
        failed = _cli(lived["settings"], *args)
        assert failed.exit_code == 2 and named in failed.stderr
        assert failed.exception is None or isinstance(failed.exception, SystemExit)
        assert len(failed.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_the_report_reads_the_same_on_postgresql(
    postgres_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
    settings = get_settings(database_url=postgres_database)
    lived = _live(_world(settings))
    report = build_report(settings, "failure")
    assert [g.evaluation.audit_seq for g in report.gates] == [e.audit_seq for e in lived["evaluations"]]
    assert [e.seq for e in report.rollbacks] == [lived["rollback_seq"]]
    assert (report.shadow.served, report.realized.outcomes, report.acceptance.total.decided) == (220, 220, 70)
    assert report.audit.verification.ok
    html_path, json_path = write_report(settings, report)
    assert GovernanceReport.model_validate_json(json_path.read_text()) == report and html_path.is_file()
