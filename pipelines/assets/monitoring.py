"""Monitoring assets of every model: the drift report, the gate signals and the gate, with their checks.

Per model family, in one run: ``monitoring/<task>/drift_report`` runs the Evidently report over the window of
the gate's subject (the challenger in its phase, or the champion alone) as of the run's moment;
``monitoring/<task>/signals`` measures every signal that applies to the family; ``monitoring/<task>/gate``
evaluates the gate with ``governance.gates.evaluate`` (recorded in the audit trail) and carries the verdict out
with ``governance.gate_actions.apply``, exactly as ``mesops gates evaluate`` does, but handed the drift report
made upstream instead of running Evidently again.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from governance import audit, gate_actions, gates
from governance.drift import DriftError, DriftResult
from governance.gates import GateEvaluation
from governance.phase_policy import SIGNALS, PolicyError, load_policies
from governance.promotion import PromotionError
from governance.rollout import RolloutError
from governance.signals import NOT_A_SIGNAL_OF, Measurement, Subject, measure
from mesops.settings import Settings
from pipelines.assets.training import TASKS
from pipelines.resources import PlatformResource

GROUP = "monitoring"
ACTOR_ROLE: audit.Role = "system"
# What evaluating or applying a gate may refuse with: a one-line failure in the UI, not a traceback.
GATE_ERRORS = (gates.GateError, gate_actions.ApprovalError, PolicyError, RolloutError, PromotionError)


def monitoring_key(task: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, task, name])


def actor_of(run_id: str) -> str:
    """Who the audit trail names for a gate run by Dagster."""
    return f"dagster:{run_id}"


def _subject(settings: Settings, task: str, until: datetime) -> Subject:
    return gates.subject_of(
        settings.resolved_database_url, gates.full_name(task), until, settings.monitoring_window_days
    )


@dataclass(frozen=True)
class DriftOutcome:
    """What the drift step found for one model in one run, handed on to its signals and gate."""

    run_id: str
    until: datetime  # the moment the run monitors: every step of the run evaluates the same window
    subject: Subject | None = None  # whose window; None when skipped
    skipped: str | None = None  # no champion: nothing to monitor
    result: DriftResult | None = None
    error: str | None = None  # the report could not be computed (too few served rows, no reference)

    def runner(self) -> gates.DriftRunner:
        """The gate's drift runner: this report (or its error) instead of a second Evidently run."""
        return gates.recorded_drift(self.result if self.result is not None else DriftError(self.error))

    def checked(self, settings: Settings, task: str, run_id: str) -> Subject | None:
        """The subject this report was made for (None: skipped), refused when made by another run or when the
        rollout moved since: the signals and the gate only judge the window of their own run's report."""
        if self.run_id != run_id:
            raise dg.Failure(
                f"{monitoring_key(task, 'drift_report').to_user_string()} was made by run {self.run_id}: "
                "materialize it in the same run (the monitor job), the gate rests on the report of its own window"
            )
        if self.subject is None:
            return None
        try:
            now = _subject(settings, task, self.until)
        except gates.GateError as err:
            now, why = None, str(err)
        else:
            phase = now.phase or "champion"
            why = f"now version {now.version} in {phase} since {now.phase_started:%Y-%m-%d %H:%M} UTC"
        if now != self.subject:
            raise dg.Failure(
                f"{self.subject.model_name}: the rollout moved during the run ({why}); nothing evaluated, the "
                "next monitor run evaluates the new state"
            )
        return self.subject


def _keep_drift_bound(settings: Settings, subject: Subject) -> float | None:
    """The drift share above which the subject's gate rolls it back (None: its policy has no such bound)."""
    policy = load_policies(settings.resolved_policies_dir).get(subject.model_name)
    if policy is None:
        return None
    keep = policy.gate(subject.phase).keep
    return next((c.threshold for c in keep if c.signal == "drift.share"), None)


def _drift_metadata(outcome: DriftOutcome) -> dict[str, object]:
    subject = outcome.subject
    if subject is None:
        return {"skipped": outcome.skipped or ""}
    meta: dict[str, object] = {
        "version": subject.version,
        "phase": "champion" if subject.phase is None else subject.phase.value,
        "window": f"{subject.window_start:%Y-%m-%d %H:%M} to {subject.window_end:%Y-%m-%d %H:%M} UTC",
    }
    result = outcome.result
    if result is None:
        return meta | {"not_computed": outcome.error or ""}
    return meta | {
        "share_drifted": result.share_drifted,
        "drifted_features": ", ".join(result.drifted_features) or "-",
        "prediction_drifted": bool(result.prediction is not None and result.prediction.drifted),
        "current_rows": result.current_rows,
        "reference_rows": result.reference_rows,
        "report_html": dg.MetadataValue.path(result.html_path or ""),
        "features": dg.MetadataValue.md(_features_markdown(result)),
    }


def _features_markdown(result: DriftResult) -> str:
    lines = ["| feature | method | score | threshold | drifted |", "|---|---|---|---|---|"]
    for f in [*result.features, *([result.prediction] if result.prediction else [])]:
        lines.append(f"| {f.feature} | {f.method} | {f.score:.4g} | {f.threshold:.4g} | {f.drifted} |")
    return "\n".join(lines)


def _drift_check(settings: Settings, outcome: DriftOutcome) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.WARN
    subject = outcome.subject
    if outcome.result is None or subject is None:
        note = outcome.skipped or f"no report: {outcome.error}"
        return dg.AssetCheckResult(passed=True, severity=severity, metadata={"note": note})
    try:
        bound = _keep_drift_bound(settings, subject)
    except PolicyError as err:
        return dg.AssetCheckResult(passed=False, severity=severity, metadata={"policy_error": str(err)})
    share = outcome.result.share_drifted
    return dg.AssetCheckResult(
        passed=bound is None or share <= bound,
        severity=severity,
        metadata={"share_drifted": share, "keep_bound": "none in the policy" if bound is None else bound},
    )


def applicable_signals(family: str, measured: dict[str, Measurement]) -> dict[str, Measurement]:
    """The measured signals that mean something for the family (realized ones belong to one family each)."""
    other_family = NOT_A_SIGNAL_OF.format(family=family)
    return {name: m for name, m in sorted(measured.items()) if m.note != other_family}


def _value(value: float | None) -> str:
    return "could not compute" if value is None else f"{value:.4g}"


def _signals_markdown(measured: dict[str, Measurement]) -> str:
    lines = ["| signal | value | sample | note |", "|---|---|---|---|"]
    lines += [f"| {name} | {_value(m.value)} | {m.sample} | {m.note} |" for name, m in measured.items()]
    return "\n".join(lines)


def conditions_markdown(evaluation: GateEvaluation) -> str:
    """Each condition of an evaluation: gate, rule, measured value, sample (vs needed), status, note."""
    lines = ["| gate | condition | measured | sample | status | note |", "|---|---|---|---|---|---|"]
    for c in evaluation.conditions:
        sample = f"{c.sample}" + (f" / {c.min_sample}" if c.min_sample else "")
        lines.append(f"| {c.gate} | {c.rule} | {_value(c.value)} | {sample} | {c.status} | {c.note} |")
    return "\n".join(lines)


def _evaluate_and_apply(
    settings: Settings, task: str, outcome: DriftOutcome, actor: str
) -> tuple[GateEvaluation, gate_actions.GateAction]:
    """`mesops gates evaluate TASK` with the run's drift report: record the evaluation, carry out its verdict."""
    policies = load_policies(settings.resolved_policies_dir)
    evaluation = gates.evaluate(
        settings,
        task,
        actor=actor,
        actor_role=ACTOR_ROLE,
        until=outcome.until,
        policies=policies,
        drift_runner=outcome.runner(),
    )
    policy = policies[evaluation.model_name]
    action = gate_actions.apply(settings, evaluation, policy, actor=actor, actor_role=ACTOR_ROLE)
    return evaluation, action


def build_monitoring_assets(task: str) -> list:
    """Drift report, signals and gate of one model family, with their checks."""
    drift_key, signals_key, gate_key = (monitoring_key(task, n) for n in ("drift_report", "signals", "gate"))

    @dg.asset(
        key=drift_key,
        group_name=GROUP,
        description=f"Evidently drift report of the {task} model being gated (challenger or champion) over "
        "its monitoring window: per-feature tests, share drifted, prediction drift.",
        kinds={"evidently"},
        check_specs=[
            dg.AssetCheckSpec(
                "drift_within_keep_bound",
                asset=drift_key,
                description="The share of drifted features is within the bound the phase policy keeps a model at.",
            )
        ],
    )
    def _drift_report(context: dg.AssetExecutionContext, platform: PlatformResource) -> Iterator[object]:
        settings = platform.settings()
        platform.ensure_database()
        until = datetime.now(UTC)
        try:
            subject = _subject(settings, task, until)
        except gates.GateError as err:  # no champion: nothing to monitor
            outcome = DriftOutcome(context.run_id, until, skipped=str(err))
        else:
            try:
                report = gates.subject_drift_report(settings, subject)
                outcome = DriftOutcome(context.run_id, until, subject, result=report)
            except Exception as err:  # as the CLI: could not compute, drift conditions fail
                # too few served rows, no reference, Evidently failing: materialized saying so; the gate says so too
                why = str(err) if isinstance(err, DriftError) else f"{type(err).__name__}: {err}"
                outcome = DriftOutcome(context.run_id, until, subject, error=why)
        yield dg.Output(outcome, metadata=_drift_metadata(outcome))
        yield _drift_check(settings, outcome)

    @dg.asset(
        key=signals_key,
        ins={"drift": dg.AssetIn(key=drift_key)},
        group_name=GROUP,
        description=f"Every gate signal of the {task} model over its monitoring window: value, sample, note.",
    )
    def _signals(
        context: dg.AssetExecutionContext, platform: PlatformResource, drift: DriftOutcome
    ) -> dg.MaterializeResult:
        settings = platform.settings()
        subject = drift.checked(settings, task, context.run_id)
        if subject is None:
            return dg.MaterializeResult(metadata={"skipped": drift.skipped or ""})
        source = drift.runner()(settings, subject)[0]
        measured = applicable_signals(
            subject.family, measure(settings.resolved_database_url, subject, SIGNALS, source)
        )
        values = {
            name: m.value for name, m in measured.items() if m.value is not None and math.isfinite(m.value)
        }
        return dg.MaterializeResult(
            metadata={
                "version": subject.version,
                "signals": dg.MetadataValue.md(_signals_markdown(measured)),
                **values,
            }
        )

    @dg.asset(
        key=gate_key,
        ins={"drift": dg.AssetIn(key=drift_key)},
        deps=[signals_key],
        group_name=GROUP,
        description=f"The {task} model's gate: every condition of its phase judged, the verdict recorded in the "
        "audit trail and carried out (advance, approval request, hold or roll back).",
        check_specs=[
            dg.AssetCheckSpec(
                "not_rolled_back", asset=gate_key, description="The gate's verdict is not a roll back."
            )
        ],
    )
    def _gate(
        context: dg.AssetExecutionContext, platform: PlatformResource, drift: DriftOutcome
    ) -> dg.MaterializeResult:
        settings = platform.settings()
        if drift.checked(settings, task, context.run_id) is None:
            check = dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN)
            return dg.MaterializeResult(metadata={"skipped": drift.skipped or ""}, check_results=[check])
        try:
            evaluation, action = _evaluate_and_apply(settings, task, drift, actor_of(context.run_id))
        except GATE_ERRORS as err:
            raise dg.Failure(f"{gates.full_name(task)}: {err}") from None
        rolled_back = evaluation.verdict == gates.Verdict.ROLL_BACK
        return dg.MaterializeResult(
            metadata={
                "version": evaluation.version,
                "phase": evaluation.phase,
                "verdict": evaluation.verdict.value,
                "summary": evaluation.summary(),
                "conditions": dg.MetadataValue.md(conditions_markdown(evaluation)),
                "evaluation_audit_seq": evaluation.audit_seq,
                "action": action.action,
                "action_detail": action.detail,
                "action_audit_seq": action.audit_seq,
                "policy": evaluation.policy,
            },
            check_results=[
                dg.AssetCheckResult(
                    passed=not rolled_back,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"verdict": evaluation.verdict.value, "action": action.detail},
                )
            ],
        )

    @dg.asset_check(asset=gate_key, name="audit_chain_verifies")
    def _audit_chain(
        context: dg.AssetCheckExecutionContext, platform: PlatformResource
    ) -> dg.AssetCheckResult:
        """The audit trail, with the gate's new entries, still verifies (no edited, deleted or moved entry)."""
        verification = audit.verify(platform.settings().resolved_database_url)
        return dg.AssetCheckResult(
            passed=verification.ok,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"entries": verification.entries, "problem": verification.problem or "-"},
        )

    return [_drift_report, _signals, _gate, _audit_chain]


def build_all_monitoring_assets() -> list:
    """Monitoring assets and checks of every model family."""
    return [definition for task in TASKS for definition in build_monitoring_assets(task)]
