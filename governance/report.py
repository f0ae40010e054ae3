"""The governance report of a model version: everything a reviewer needs, in one HTML file and one JSON file.

For one version of a forecaster it gathers, from the registry, the platform database and the audit trail:
its lineage (extracts -> contract results -> anonymization attestations -> run -> version), its offline
metrics against the baseline (and the champion's), the shadow comparison with the champion, drift over time,
the planners' acceptance over time, the realized accuracy of its served predictions, every gate decision with
its conditions, the approvals, rollbacks and other rollout decisions (each with its audit sequence number) and
the verification of the audit chain. Every number a plot shows is in the JSON too.

It holds no personal data: ids of machines, lines, batches and runs, counts, scores, and the audit trail's
actors and reasons of rollout decisions. Planner comments (free text typed on the shop floor) are left out:
decisions appear as counts by status and reason code only.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, or_, select

from governance import audit, drift, gate_actions, gates, rollout
from governance.gates import GateEvaluation
from governance.lineage import Lineage
from governance.phase_policy import SIGNALS, Phase
from governance.registry import MODEL_PREFIX, Registry
from governance.report_document import (
    AcceptanceSection,
    AttestationEvidence,
    AuditSection,
    BatchEvidence,
    DailyAcceptance,
    DailyRealized,
    DailyShadow,
    DriftFeatureScore,
    DriftPoint,
    DriftSection,
    EventKind,
    GateDecision,
    GovernanceEvent,
    GovernanceReport,
    GroupAcceptance,
    LineageSection,
    OfflineSection,
    Rate,
    RealizedSection,
    ReasonCount,
    ShadowSection,
    SignalValue,
    VersionStatus,
)
from governance.signals import (
    DECIDED,
    NOT_A_SIGNAL_OF,
    PREDICTION_KEY,
    Subject,
    acceptance,
    measure,
    served_rows,
    would_disagree,
)
from mesops import database
from mesops.serving_tables import PredictionLogEntry, Recommendation
from mesops.settings import Settings
from mesops.tables import AttestationRecord, IngestBatch, TableLoad

# Every realized-accuracy signal the gates know; measure() says which are not its family's (left out here).
REALIZED_SIGNALS = tuple(name for name in SIGNALS if name.startswith("realized."))
PHASE_ORDER = {phase.value: order for order, phase in enumerate(Phase)}  # shadow < approval < autonomous
DECISION_PREFIX = "recommendation."
_CITED_EVALUATION = re.compile(r"gate evaluation #(\d+)")


class ReportError(LookupError):
    """A report that cannot be built: unknown model or version, or no version to default to."""


# --- building it ------------------------------------------------------------------------------------------
def build_report(settings: Settings, model: str, version: str | None = None) -> GovernanceReport:
    """Gather the report of ``model`` (failure, yield, consumption or mesops-<task>) at ``version``.

    ``version`` is a version number or an alias (champion, challenger); by default the current challenger, else
    the champion. ReportError names an unknown model or version. The platform database must be at the current
    schema (``mesops db upgrade``).
    """
    name, family = _model(model)
    url = settings.resolved_database_url
    registry = Registry.from_settings(settings)
    view = rollout.view(url, name)
    status = _status(registry, url, view, name, family, version)
    number = status.version
    lineage = registry.lineage(name, number)
    entries = list(audit.entries(url, name))
    evaluations = gates.history(url, name)
    governance = _governance_events(entries, number, {e.audit_seq: e for e in evaluations})
    served = _served(url, name, family, number)
    return GovernanceReport(
        generated_at=datetime.now(UTC),
        version=status,
        lineage=_lineage_section(url, lineage),
        offline=_offline_section(registry, name, number, view.champion),
        shadow=_shadow_section(url, served, name, family, number),
        drift=_drift_section(settings, url, name, number),
        acceptance=_acceptance_section(url, name, number),
        realized=_realized_section(url, served, name, family, number),
        gates=_gate_decisions(evaluations, governance, number),
        governance=governance,
        audit=_audit_section(url, name, entries, number),
    )


def _model(model: str) -> tuple[str, str]:
    family = model.removeprefix(MODEL_PREFIX)
    if family not in PREDICTION_KEY:
        raise ReportError(
            f"model {model!r}: unknown; must be one of {', '.join(PREDICTION_KEY)} (or {MODEL_PREFIX}<model>)"
        )
    return MODEL_PREFIX + family, family


def _status(
    registry: Registry, url: str, view: rollout.RolloutView, name: str, family: str, version: str | None
) -> VersionStatus:
    versions = [v.version for v in registry.versions(name)]
    if not versions:
        raise ReportError(f"{name}: no registered version yet (train one with `mesops train`)")
    number = _chosen_version(view, name, version, versions)
    info = registry.version(name, number)
    pending = gate_actions.pending_request(url, name)
    waiting = pending if pending is not None and pending.version == number else None
    if number == view.challenger:
        status = f"challenger in {view.phase.value if view.phase else 'shadow'}"
    elif number == view.champion:
        status = "champion"
    else:
        status = "no alias (retired or never promoted)"
    return VersionStatus(
        model_name=name,
        family=family,
        version=number,
        run_id=info.run_id,
        registered_at=info.created,
        status=status,
        champion=view.champion,
        challenger=view.challenger,
        phase=None if view.phase is None else view.phase.value,
        versions=versions,
        pending_approval_seq=None if waiting is None else waiting.audit_seq,
        pending_approval_to=None if waiting is None else waiting.to,
    )


def _chosen_version(view: rollout.RolloutView, name: str, version: str | None, versions: list[str]) -> str:
    if version is None:
        chosen = view.challenger or view.champion
        if chosen is None:
            raise ReportError(
                f"{name} has neither challenger nor champion: give a VERSION (registered: {', '.join(versions)})"
            )
        return chosen
    aliases = {"champion": view.champion, "challenger": view.challenger}
    if version in aliases:
        if aliases[version] is None:
            raise ReportError(f"version {version!r}: {name} has no {version} now")
        return str(aliases[version])
    if version not in versions:
        raise ReportError(
            f"version {version!r}: {name} has no such version (registered: {', '.join(versions)}; "
            "or champion, challenger)"
        )
    return version


# --- lineage and data evidence ------------------------------------------------------------------------------
def _lineage_section(url: str, lineage: Lineage) -> LineageSection:
    with database.session_scope(url) as session:
        batches = [
            _batch_evidence(session, table, batch_id)
            for table, fingerprint in sorted(lineage.datasets.items())
            for batch_id in fingerprint.batches
        ]
        records = {
            a.attestation_id: a.policy_version
            for a in session.scalars(
                select(AttestationRecord).where(AttestationRecord.attestation_id.in_(lineage.attestations))
            )
        }
    return LineageSection(
        lineage=lineage,
        missing_fields=lineage.missing_fields(),
        batches=batches,
        attestations_missing=[a for a in lineage.attestations if a not in records],
        attestation_policies=sorted(set(records.values())),
    )


def _batch_evidence(session: Any, table: str, batch_id: str) -> BatchEvidence:
    batch = session.get(IngestBatch, batch_id)
    load = session.scalars(
        select(TableLoad)
        .where(TableLoad.batch_id == batch_id, TableLoad.table_name == table)
        .order_by(TableLoad.created_at.desc())
    ).first()
    record = session.get(AttestationRecord, load.attestation_id) if load and load.attestation_id else None
    return BatchEvidence(
        table=table,
        batch_id=batch_id,
        source_kind=batch.source_kind if batch else None,
        extract_path=batch.path if batch else None,
        manifest_sha256=batch.manifest_sha256 if batch else None,
        contract=load.contract_ref if load else None,
        landed=load.landed if load else None,
        valid=load.valid if load else None,
        quarantined=load.quarantined if load else None,
        quarantined_by_reason={str(k): int(v) for k, v in (load.reasons or {}).items()} if load else {},
        attestation=None if record is None else _attestation(record),
    )


def _attestation(record: AttestationRecord) -> AttestationEvidence:
    document = record.document or {}
    replaced = {
        str(c.get("column")): {str(k): int(v) for k, v in (c.get("replaced") or {}).items()}
        for c in document.get("columns", [])
    }
    return AttestationEvidence(
        attestation_id=record.attestation_id,
        policy_version=record.policy_version,
        content_sha256=record.content_sha256,
        rows=document.get("rows"),
        replaced=replaced,
    )


# --- offline metrics ----------------------------------------------------------------------------------------
def _offline_section(registry: Registry, name: str, version: str, champion: str | None) -> OfflineSection:
    report = registry.report(name, version)
    if champion is None or champion == version:
        return OfflineSection(report=report)
    theirs = registry.report(name, champion).baseline
    return OfflineSection(
        report=report,
        champion_version=champion,
        champion_value=theirs.model_value if theirs.metric == report.baseline.metric else None,
        champion_baseline_value=theirs.baseline_value if theirs.metric == report.baseline.metric else None,
    )


# --- served traffic: shadow comparison and realized accuracy -----------------------------------------------
def _produced_by(name: str, version: str) -> Any:
    log = PredictionLogEntry
    return (log.model_name == name) & or_(log.answered_version == version, log.challenger_version == version)


def _served_span(url: str, name: str, version: str) -> tuple[datetime, datetime] | None:
    log = PredictionLogEntry
    with database.session_scope(url) as session:
        first, last = session.execute(
            select(func.min(log.created_at), func.max(log.created_at)).where(_produced_by(name, version))
        ).one()
    if first is None or last is None:
        return None
    return _utc(first), _utc(last) + timedelta(seconds=1)


def _subject(name: str, family: str, version: str, start: datetime, end: datetime) -> Subject:
    # A window of the version's traffic whatever its phase: the signals read it as the gates do.
    return Subject(
        model_name=name,
        family=family,
        version=version,
        champion_version=None,
        phase=None,
        phase_started=start,
        window_start=start,
        window_end=end,
    )


@dataclass(frozen=True)
class _Served:
    """The version's served rows over its whole life (one read), with the UTC day of each and the span."""

    frame: pd.DataFrame
    span: tuple[datetime, datetime] | None


def _served(url: str, name: str, family: str, version: str) -> _Served:
    span = _served_span(url, name, version)
    if span is None:
        return _Served(
            pd.DataFrame(columns=["created_at", "latency_ms", "own", "champion", "actual", "day"]), None
        )
    frame = served_rows(url, _subject(name, family, version, *span))
    frame["day"] = pd.to_datetime(frame["created_at"], utc=True).dt.date
    return _Served(frame, span)


def _shadow_section(url: str, served: _Served, name: str, family: str, version: str) -> ShadowSection:
    key = PREDICTION_KEY[family]
    frame = served.frame
    per_day = [_daily_shadow(day, rows, key) for day, rows in frame.groupby("day", sort=True)]
    paired = sum(d.paired for d in per_day)
    disagreements = sum(d.disagreements for d in per_day)
    against = _challengers_against(url, name, version)
    if frame.empty:
        note = "no served traffic yet"
    elif not paired:
        note = "no paired requests: this version was never scored as a challenger beside a champion" + (
            f"; see the reports of challenger(s) {', '.join(against)} for their comparison with it"
            if against
            else ""
        )
    else:
        note = ""
    created = pd.to_datetime(frame["created_at"], utc=True)
    return ShadowSection(
        prediction_key=key,
        first_served=None if frame.empty else created.min().to_pydatetime(),
        last_served=None if frame.empty else created.max().to_pydatetime(),
        served=len(frame),
        paired=paired,
        disagreements=disagreements,
        disagreement_rate=disagreements / paired if paired else None,
        per_day=per_day,
        challengers_against=against,
        note=note,
    )


def _daily_shadow(day: date, rows: pd.DataFrame, key: str) -> DailyShadow:
    scored = rows[rows["own"].notna()]
    paired = scored[scored["champion"].notna()]
    disagreements = sum(would_disagree(c, o) for c, o in zip(paired["champion"], paired["own"], strict=True))
    latency = rows["latency_ms"].astype(float)
    return DailyShadow(
        day=day,
        served=len(rows),
        errors=len(rows) - len(scored),
        paired=len(paired),
        disagreements=int(disagreements),
        disagreement_rate=disagreements / len(paired) if len(paired) else None,
        mean_own=_mean_output(scored["own"], key),
        mean_champion=_mean_output(paired["champion"], key),
        p99_latency_ms=float(np.percentile(latency, 99)) if len(latency) else None,
    )


def _mean_output(outputs: pd.Series, key: str) -> float | None:
    values = [float(o[key]) for o in outputs if isinstance(o, dict) and o.get(key) is not None]
    return float(np.mean(values)) if values else None


def _challengers_against(url: str, name: str, version: str) -> list[str]:
    log = PredictionLogEntry
    query = (
        select(log.challenger_version)
        .where(log.model_name == name, log.champion_version == version, log.challenger_version.is_not(None))
        .distinct()
    )
    with database.session_scope(url) as session:
        found = {str(v) for v in session.scalars(query) if v != version}
    return sorted(found, key=lambda v: (len(v), v))


def _realized_section(url: str, served: _Served, name: str, family: str, version: str) -> RealizedSection:
    frame = served.frame
    resolved = frame[frame["actual"].notna()]
    if resolved.empty or served.span is None:
        note = "no served traffic yet" if frame.empty else "no outcomes matured yet"
        return RealizedSection(outcomes=0, overall=[], per_day=[], note=note)
    paired = bool(resolved["champion"].notna().any())
    wanted = tuple(n for n in REALIZED_SIGNALS if paired or not compares_with_champion(n))
    overall = _signals(url, _subject(name, family, version, *served.span), wanted)
    names = tuple(s.signal for s in overall)
    per_day = []
    for day, rows in resolved.groupby("day", sort=True):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        subject = _subject(name, family, version, start, start + timedelta(days=1))
        per_day.append(DailyRealized(day=day, outcomes=len(rows), signals=_signals(url, subject, names)))
    return RealizedSection(outcomes=len(resolved), overall=overall, per_day=per_day)


def compares_with_champion(signal: str) -> bool:
    """A realized signal of the version against the champion on the same requests (needs paired outputs)."""
    return signal.endswith((".gain", ".ratio"))


def _signals(url: str, subject: Subject, names: tuple[str, ...]) -> list[SignalValue]:
    """The named signals as the gates measure them, without those that are not of the subject's family."""
    measured = measure(url, subject, names)
    return [
        SignalValue(signal=n, value=measured[n].value, sample=measured[n].sample, note=measured[n].note)
        for n in names
        if measured[n].note != NOT_A_SIGNAL_OF.format(family=subject.family)
    ]


# --- drift -----------------------------------------------------------------------------------------------------
def _drift_section(settings: Settings, url: str, name: str, version: str) -> DriftSection:
    points = [
        DriftPoint(
            computed_at=r.computed_at,
            window_start=r.window_start,
            window_end=r.window_end,
            reference_rows=r.reference_rows,
            current_rows=r.current_rows,
            share_drifted=r.share_drifted,
            drifted_features=r.drifted_features,
            prediction_drifted=None if r.prediction is None else r.prediction.drifted,
            features=[_feature_score(f) for f in r.features],
            html_path=_under(settings.reports_dir, r.html_path),
            json_path=_under(settings.reports_dir, r.json_path),
        )
        for r in drift.history(url, name, version)
    ]
    family = name.removeprefix(MODEL_PREFIX)
    note = (
        "" if points else f"no drift report of this version yet (`mesops gates evaluate {family}` runs one)"
    )
    return DriftSection(reports=points, note=note)


def _feature_score(feature: drift.FeatureDrift) -> DriftFeatureScore:
    score = feature.score if np.isfinite(feature.score) else None
    return DriftFeatureScore(
        feature=feature.feature,
        method=feature.method,
        score=score,
        threshold=feature.threshold,
        drifted=feature.drifted,
    )


def _under(root: Path, path: str | None) -> str | None:
    """A path relative to ``root`` when it lies under it (so reports move with their folder), else as given."""
    if path is None:
        return None
    resolved = Path(path).resolve()
    return str(resolved.relative_to(root.resolve())) if resolved.is_relative_to(root.resolve()) else path


# --- planner acceptance ------------------------------------------------------------------------------------
def _acceptance_section(url: str, name: str, version: str) -> AcceptanceSection:
    rec = Recommendation
    query = select(rec.status, rec.phase, rec.line_id, rec.reason_code, rec.created_at).where(
        rec.model_name == name, rec.model_version == version
    )
    with database.session_scope(url) as session:
        rows = [tuple(r) for r in session.execute(query)]
    frame = pd.DataFrame(rows, columns=["status", "phase", "line_id", "reason_code", "created_at"])
    frame["day"] = pd.to_datetime(frame["created_at"], utc=True).dt.date
    frame["line_id"] = frame["line_id"].fillna("-")
    decided = frame[frame["status"].isin(DECIDED)]
    if frame.empty:
        note = "no recommendations made by this version yet"
    elif decided.empty:
        note = "no recommendation of this version decided by a planner yet"
    else:
        note = ""
    return AcceptanceSection(
        made=len(frame),
        by_status=dict(sorted(Counter(frame["status"]).items())),
        total=Rate(**_rate(decided)),
        per_day=[
            DailyAcceptance(day=day, made=len(rows), **_rate(rows[rows["status"].isin(DECIDED)]))
            for day, rows in frame.groupby("day", sort=True)
        ],
        by_line=_groups(decided, "line_id"),
        by_phase=_groups(decided, "phase"),
        by_reason=[
            ReasonCount(status=status, reason_code=str(reason), count=count)
            for (status, reason), count in sorted(
                Counter(zip(decided["status"], decided["reason_code"].fillna("-"), strict=True)).items()
            )
        ],
        note=note,
    )


def _rate(decided: pd.DataFrame) -> dict[str, Any]:
    result = acceptance(int((decided["status"] == "ACCEPTED").sum()), len(decided))
    return {
        "accepted": result.accepted,
        "decided": result.decided,
        "rate": result.rate,
        "lower": result.lower,
        "upper": result.upper,
    }


def _groups(decided: pd.DataFrame, column: str) -> list[GroupAcceptance]:
    return [
        GroupAcceptance(group=str(group), **_rate(rows)) for group, rows in decided.groupby(column, sort=True)
    ]


# --- gate decisions, approvals, rollbacks, audit ------------------------------------------------------------
def _cited_evaluation(event: audit.AuditEvent) -> int | None:
    """The gate evaluation an entry rests on: its evidence's evaluation_seq, else one named in its reason."""
    cited = event.evidence.get("evaluation_seq")
    if isinstance(cited, int):
        return cited
    found = _CITED_EVALUATION.search(event.reason)
    return int(found.group(1)) if found else None


def _kind(event: audit.AuditEvent, evaluation: GateEvaluation | None) -> EventKind:
    action = event.action
    backwards = PHASE_ORDER.get(str(event.evidence.get("to_phase")), 9) < PHASE_ORDER.get(
        str(event.evidence.get("from_phase")), -1
    )
    if action == "rollback" or (evaluation is not None and evaluation.verdict == gates.Verdict.ROLL_BACK):
        return "rollback"
    if action == "set_phase":
        return "rollback" if backwards else "phase"
    if action in ("approval_requested", "approve"):
        return "approval"
    if action in ("promote", "demote", "promotion_refused"):
        return "promotion"
    return "registration" if action == "register" else "other"


def _governance_events(
    entries: list[audit.AuditEntry], version: str, evaluations: dict[int | None, GateEvaluation]
) -> list[GovernanceEvent]:
    """Every rollout decision touching the version (not gate evaluations themselves, nor planner decisions)."""
    events = []
    for entry in entries:
        event = entry.event
        if event.action == gates.EVALUATION_ACTION or event.action.startswith(DECISION_PREFIX):
            continue
        cited = _cited_evaluation(event)
        evaluation = evaluations.get(cited) if cited is not None else None
        concerns = {event.model_version, event.evidence.get("from_version")}
        if evaluation is not None:
            concerns.add(evaluation.version)
        if version not in {str(v) for v in concerns if v is not None}:
            continue
        events.append(
            GovernanceEvent(
                seq=entry.seq,
                occurred_at=entry.occurred_at,
                actor=event.actor,
                actor_role=event.actor_role,
                action=event.action,
                kind=_kind(event, evaluation),
                model_version=event.model_version,
                alias=event.alias,
                reason=event.reason,
                evidence={k: v for k, v in event.evidence.items() if _scalar(v)},
                evaluation_seq=cited,
                evaluation_version=None if evaluation is None else evaluation.version,
                evaluation_verdict=None if evaluation is None else evaluation.verdict.value,
                failed_conditions=[] if evaluation is None else _failed_texts(evaluation),
            )
        )
    return events


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _failed_texts(evaluation: GateEvaluation) -> list[str]:
    """The failed conditions, keep conditions first (one of them is what rolls a version back)."""
    failed = sorted(evaluation.failed, key=lambda c: c.gate != "keep")
    return [_condition_text(c) for c in failed]


def _condition_text(condition: gates.ConditionResult) -> str:
    value = "could not compute" if condition.value is None else f"{condition.value:.4g}"
    return f"{condition.gate} {condition.rule}: {value} (sample {condition.sample})"


def _gate_decisions(
    evaluations: list[GateEvaluation], governance: list[GovernanceEvent], version: str
) -> list[GateDecision]:
    return [
        GateDecision(
            evaluation=e,
            followed_by=[g.seq for g in governance if g.evaluation_seq == e.audit_seq],
        )
        for e in evaluations
        if e.version == version
    ]


def _audit_section(url: str, name: str, entries: list[audit.AuditEntry], version: str) -> AuditSection:
    family = name.removeprefix(MODEL_PREFIX)
    decisions = Counter(
        e.event.action
        for e in entries
        if e.event.action.startswith(DECISION_PREFIX) and e.event.model_version == version
    )
    return AuditSection(
        verification=audit.verify(url),
        model_entries=len(entries),
        decisions_audited=dict(sorted(decisions.items())),
        commands=[
            "mesops audit verify",
            f"mesops audit list --model {name}",
            f"mesops gates history {family}",
            f"mesops models lineage {family} {version}",
        ],
    )


def _utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- writing it -----------------------------------------------------------------------------------------------
def report_folder(settings: Settings, report: GovernanceReport) -> Path:
    """Where the reports of a version go: MESOPS_HOME/reports/governance/<model>/<version>/."""
    return settings.reports_dir / "governance" / report.version.model_name / report.version.version


def write_report(settings: Settings, report: GovernanceReport) -> tuple[Path, Path]:
    """Write the report as self-contained HTML and as JSON, named by its UTC time; returns (html, json)."""
    from governance.report_render import render_html  # matplotlib is imported only to write a report

    folder = report_folder(settings, report)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = report.generated_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f") + "Z"
    html_path, json_path = folder / f"{stamp}.html", folder / f"{stamp}.json"
    json_path.write_text(report.model_dump_json(indent=2))
    html_path.write_text(render_html(report, folder, settings.reports_dir, json_path.name))
    return html_path, json_path
