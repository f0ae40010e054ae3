"""Gate evaluation: measure every condition of the phase policy, judge each, and give the verdict.

For the model's challenger (or its champion, when there is none) the gate of the current phase is read from
the phase policy; each condition gets its measured value, threshold, sample size and status:
``pass``, ``fail`` (including "could not compute") or ``pending`` (sample below ``min_sample``). The verdict:
``roll_back`` when a keep condition fails, ``advance`` when every advance condition passes, else ``hold``.
Each evaluation is an audit entry holding the whole result, so the evidence of a decision is sealed in the
hash chain (``mesops audit verify`` catches an edited gate decision) and ``history`` reads it back from there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from governance import audit, rollout
from governance.phase_policy import ChampionGate, Condition, PhasePolicy, PolicyError, load_policies
from governance.promotion import CHALLENGER, CHAMPION
from governance.registry import MODEL_PREFIX
from governance.signals import DriftSource, DriftSummary, Measurement, Subject, measure
from mesops import database
from mesops.rollout_tables import ModelAlias
from mesops.serving_tables import RolloutState
from mesops.settings import Settings

if TYPE_CHECKING:  # the drift module is imported where it runs (see evidently_drift)
    from governance.drift import DriftResult

EVALUATION_ACTION = "gate_evaluation"
Status = Literal["pass", "fail", "pending"]


class Verdict(StrEnum):
    """What the gate says should happen to the model version."""

    ADVANCE = "advance"
    HOLD = "hold"
    ROLL_BACK = "roll_back"


class GateError(RuntimeError):
    """A gate that cannot be evaluated: no such model, no champion, no policy."""


class ConditionResult(BaseModel):
    """One condition as judged: what was measured against what, on how much evidence."""

    model_config = ConfigDict(frozen=True)

    gate: Literal["advance", "keep"]
    signal: str
    rule: str
    value: float | None
    threshold: float
    sample: int
    min_sample: int
    status: Status
    note: str = ""


class GateEvaluation(BaseModel):
    """The gate of one model version at one moment: every condition and the verdict."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    champion_version: str | None
    phase: str  # shadow, approval, autonomous, or champion (no challenger)
    verdict: Verdict
    conditions: list[ConditionResult]
    policy: str
    policy_sha256: str
    window_start: datetime
    window_end: datetime
    evaluated_at: datetime
    evaluated_by: str
    drift_report: dict[str, Any] | None = None
    audit_seq: int | None = None

    @property
    def failed(self) -> list[ConditionResult]:
        return [c for c in self.conditions if c.status == "fail"]

    @property
    def pending(self) -> list[ConditionResult]:
        return [c for c in self.conditions if c.status == "pending"]

    def summary(self) -> str:
        """One line: the verdict and why."""
        counts = {s: sum(c.status == s for c in self.conditions) for s in ("pass", "fail", "pending")}
        why = ", ".join(f"{c.gate} {c.rule} failed ({_shown(c.value)})" for c in self.failed[:3])
        return (
            f"{self.verdict.value}: {counts['pass']} passed, {counts['fail']} failed, {counts['pending']} pending"
            + (f"; {why}" if why else "")
        )


def _shown(value: float | None) -> str:
    return "could not compute" if value is None else f"{value:.4g}"


def judge(gate: Literal["advance", "keep"], condition: Condition, measured: Measurement) -> ConditionResult:
    """One condition's status: pending below its sample, fail when not computable or out of bound, else pass."""
    if measured.sample < condition.min_sample:
        status: Status = "pending"
    elif measured.value is None:
        status = "fail"
    elif condition.at_least is not None:
        status = "pass" if measured.value >= condition.at_least else "fail"
    else:
        status = "pass" if measured.value <= condition.threshold else "fail"
    return ConditionResult(
        gate=gate,
        signal=condition.signal,
        rule=condition.rule,
        value=measured.value,
        threshold=condition.threshold,
        sample=measured.sample,
        min_sample=condition.min_sample,
        status=status,
        note=measured.note,
    )


def verdict(results: list[ConditionResult]) -> Verdict:
    """roll_back if a keep condition failed; advance if there are advance conditions and all passed; else hold."""
    if any(r.gate == "keep" and r.status == "fail" for r in results):
        return Verdict.ROLL_BACK
    advance = [r for r in results if r.gate == "advance"]
    if advance and all(r.status == "pass" for r in advance):
        return Verdict.ADVANCE
    return Verdict.HOLD


# --- whose gate, over which window -----------------------------------------------------------------------------
def family_of(model_name: str) -> str:
    return model_name.removeprefix(MODEL_PREFIX)


def full_name(model: str) -> str:
    """'failure' or 'mesops-failure' -> 'mesops-failure'."""
    return MODEL_PREFIX + model.removeprefix(MODEL_PREFIX)


def subject_of(db_url: str, model_name: str, until: datetime, window_days: float) -> Subject:
    """The challenger in its phase, or the champion alone; the window is the last days of that phase."""
    view = rollout.view(db_url, model_name)
    if view.champion is None:
        raise GateError(f"{model_name} has no champion: nothing to evaluate")
    with database.session_scope(db_url) as session:
        aliases = {
            row.alias: row
            for row in session.scalars(select(ModelAlias).where(ModelAlias.model_name == model_name))
        }
        state = session.get(RolloutState, model_name)
        if view.challenger is not None:
            started = _utc(aliases[CHALLENGER].updated_at)
            if state is not None and state.challenger_version == view.challenger:
                started = max(started, _utc(state.updated_at))
        else:
            started = _utc(aliases[CHAMPION].updated_at)
    version = view.challenger or view.champion
    return Subject(
        model_name=model_name,
        family=family_of(model_name),
        version=version,
        champion_version=view.champion if view.challenger else None,
        phase=view.phase,
        phase_started=started,
        window_start=max(started, until - timedelta(days=window_days)),
        window_end=until,
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- evaluation ---------------------------------------------------------------------------------------------------
DriftRunner = Callable[[Settings, Subject], tuple[DriftSource, Callable[[], dict[str, Any] | None]]]


def subject_drift_report(settings: Settings, subject: Subject) -> DriftResult:
    """The Evidently drift report of the subject's version over exactly the subject's window (recorded).

    Made from the first served row on: whether there are enough rows to judge is each drift condition's
    ``min_sample`` (below it the condition is pending), never a fixed number here that could turn a condition
    with enough rows into "could not compute".
    """
    from governance import drift  # imported here: a failure is "could not compute", not a traceback

    return drift.run_drift_report(
        settings,
        subject.model_name,
        subject.version,
        until=subject.window_end,
        window_days=(subject.window_end - subject.window_start) / timedelta(days=1),
        min_rows=1,  # the drift conditions' min_sample decides when there are enough rows (pending below it)
    )


def _drift_summary(result: DriftResult, summary: DriftSummary) -> dict[str, Any]:
    """What an evaluation keeps of the drift report it judged on."""
    return {
        "html": result.html_path,
        "json": result.json_path,
        "share_drifted": result.share_drifted,
        "drifted_features": result.drifted_features,
        "severity": summary.severity,
        "worst_feature": summary.worst_feature,
        "current_rows": result.current_rows,
        "reference_rows": result.reference_rows,
    }


def evidently_drift(
    settings: Settings, subject: Subject
) -> tuple[DriftSource, Callable[[], dict[str, Any] | None]]:
    """A drift source running the Evidently report for the subject's window (and the report's summary after)."""
    done: dict[str, Any] = {}

    def source() -> DriftSummary:
        result = subject_drift_report(settings, subject)
        summary = result.summary()
        done["report"] = _drift_summary(result, summary)
        return summary

    return source, lambda: done.get("report")


def recorded_drift(made: DriftResult | Exception) -> DriftRunner:
    """A drift runner handing the gate a report already made for its subject's window (Evidently is not re-run).

    ``made`` is what :func:`subject_drift_report` gave: the report, or the error that stopped it, raised again
    so the drift conditions fail or wait exactly as when the gate runs the report itself. A report of another
    version or window is refused (GateError: the condition fails, it never judges on other evidence).
    """

    def runner(
        settings: Settings, subject: Subject
    ) -> tuple[DriftSource, Callable[[], dict[str, Any] | None]]:
        done: dict[str, Any] = {}

        def source() -> DriftSummary:
            if isinstance(made, Exception):
                raise made
            _same_window(made, subject)
            summary = made.summary()
            done["report"] = _drift_summary(made, summary)
            return summary

        return source, lambda: done.get("report")

    return runner


def _same_window(result: DriftResult, subject: Subject) -> None:
    # the report's start is recomputed from a float number of days: allow it a second of rounding
    slack = timedelta(seconds=1)
    if (
        (result.model_name, str(result.version)) != (subject.model_name, subject.version)
        or abs(result.window_start - subject.window_start) > slack
        or abs(result.window_end - subject.window_end) > slack
    ):
        raise GateError(
            f"drift report: made for {result.model_name} version {result.version} over "
            f"{result.window_start.isoformat()} to {result.window_end.isoformat()}; the gate evaluates version "
            f"{subject.version} over {subject.window_start.isoformat()} to {subject.window_end.isoformat()}"
        )


def evaluate(
    settings: Settings,
    model: str,
    *,
    actor: str,
    actor_role: audit.Role,
    until: datetime | None = None,
    record: bool = True,
    policies: dict[str, PhasePolicy] | None = None,
    drift_runner: DriftRunner = evidently_drift,
) -> GateEvaluation:
    """Evaluate the gate of the model's current phase; recorded in the audit trail unless ``record`` is False."""
    name = full_name(model)
    policies = policies if policies is not None else load_policies(settings.resolved_policies_dir)
    policy = policies.get(name)
    if policy is None:
        raise PolicyError(f"no phase policy for {name} in {settings.resolved_policies_dir}")
    url = settings.resolved_database_url
    database.upgrade(url)
    now = until or datetime.now(UTC)
    subject = subject_of(url, name, now, settings.monitoring_window_days)
    gate = policy.gate(subject.phase)
    advance = () if isinstance(gate, ChampionGate) else gate.advance
    conditions = [("advance", c) for c in advance] + [("keep", c) for c in gate.keep]
    drift_source, drift_report = drift_runner(settings, subject)
    measured = measure(url, subject, {c.signal for _, c in conditions}, _needs_rows(conditions, drift_source))
    results = [judge(kind, c, measured[c.signal]) for kind, c in conditions]  # type: ignore[arg-type]
    evaluation = GateEvaluation(
        model_name=name,
        version=subject.version,
        champion_version=subject.champion_version,
        phase="champion" if subject.phase is None else subject.phase.value,
        verdict=verdict(results),
        conditions=results,
        policy=policy.ref,
        policy_sha256=policy.sha256,
        window_start=subject.window_start,
        window_end=subject.window_end,
        evaluated_at=datetime.now(UTC),
        evaluated_by=actor,
        drift_report=drift_report(),
    )
    if not record:
        return evaluation
    entry = audit.append(
        url,
        audit.AuditEvent(
            actor=actor,
            actor_role=actor_role,
            action=EVALUATION_ACTION,
            model_name=name,
            model_version=subject.version,
            alias=CHAMPION if subject.phase is None else CHALLENGER,
            reason=evaluation.summary(),
            evidence=evaluation.model_dump(mode="json", exclude={"audit_seq"}),
        ),
    )
    return evaluation.model_copy(update={"audit_seq": entry.seq})


def _needs_rows(conditions: list[tuple[str, Condition]], source: DriftSource) -> DriftSource:
    """Run the drift report only when some drift condition may use it (its min_sample is checked after)."""
    return source if any(c.signal.startswith("drift.") for _, c in conditions) else _no_drift


def _no_drift() -> DriftSummary:
    raise GateError("no drift condition in this gate")


def history(db_url: str, model: str) -> list[GateEvaluation]:
    """Every recorded evaluation of a model's gates, oldest first (read from the audit trail)."""
    name = full_name(model)
    return [
        GateEvaluation.model_validate({**entry.event.evidence, "audit_seq": entry.seq})
        for entry in audit.entries(db_url, name)
        if entry.event.action == EVALUATION_ACTION
    ]
