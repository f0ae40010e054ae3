"""`mesops gates evaluate|history` and `mesops approve`: the rollout gates by hand (Dagster runs them on a schedule)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from governance import gate_actions, gates
from governance.gates import GateEvaluation
from governance.phase_policy import PolicyError, load_policies
from governance.promotion import PromotionError
from governance.rollout import RolloutError
from mesops import database
from mesops.settings import get_settings

gates_app = typer.Typer(help="Evaluate the rollout gates and read their history.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)
MODEL_HELP = "Model: failure, yield or consumption."
STATUS_STYLE = {"pass": "green", "fail": "red", "pending": "yellow"}
KNOWN_ERRORS = (
    gates.GateError,
    gate_actions.ApprovalError,
    PolicyError,
    RolloutError,
    PromotionError,
)


def _fail(err: Exception) -> typer.Exit:
    err_console.print(f"[red]error:[/] {err}")
    return typer.Exit(2)


def conditions_table(evaluation: GateEvaluation) -> Table:
    """Each condition: gate, rule, measured value, sample (vs needed), status, note."""
    table = Table("gate", "condition", "measured", "sample", "status", "note")
    for c in evaluation.conditions:
        value = "could not compute" if c.value is None else f"{c.value:.4g}"
        sample = f"{c.sample}" + (f" / {c.min_sample}" if c.min_sample else "")
        style = STATUS_STYLE[c.status]
        table.add_row(c.gate, c.rule, value, sample, f"[{style}]{c.status}[/]", c.note)
    return table


@gates_app.command("evaluate")
def evaluate(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    actor: Annotated[str, typer.Option(help="Who runs the evaluation (recorded).")] = "cli",
    role: Annotated[str, typer.Option(help="ml-engineer or governance.")] = "ml-engineer",
    dry_run: Annotated[
        bool, typer.Option(help="Measure and show the verdict; record and change nothing.")
    ] = False,
) -> None:
    """Measure every condition of the current phase's gate, record the verdict and carry it out."""
    settings = get_settings()
    database.upgrade(settings.resolved_database_url)
    try:
        policies = load_policies(settings.resolved_policies_dir)
        evaluation = gates.evaluate(
            settings,
            model,
            actor=actor,
            actor_role=role,
            record=not dry_run,
            policies=policies,  # type: ignore[arg-type]
        )
        console.print(
            f"{evaluation.model_name} version {evaluation.version} in [bold]{evaluation.phase}[/] "
            f"(policy {evaluation.policy}); window {evaluation.window_start:%Y-%m-%d %H:%M} to "
            f"{evaluation.window_end:%Y-%m-%d %H:%M} UTC"
        )
        console.print(conditions_table(evaluation))
        if evaluation.drift_report and evaluation.drift_report.get("html"):
            console.print(f"drift report: {evaluation.drift_report['html']}")
        console.print(f"verdict: [bold]{evaluation.verdict.value}[/] — {evaluation.summary()}")
        if dry_run:
            console.print("dry run: nothing recorded, nothing changed")
            return
        action = gate_actions.apply(
            settings,
            evaluation,
            policies[evaluation.model_name],
            actor=actor,
            actor_role=role,  # type: ignore[arg-type]
        )
    except KNOWN_ERRORS as err:
        raise _fail(err) from None
    console.print(f"{action.action}: {action.detail} (evaluation audit #{evaluation.audit_seq})")


@gates_app.command("history")
def history(model: Annotated[str, typer.Argument(help=MODEL_HELP)]) -> None:
    """Every recorded gate evaluation of the model: when, which version and phase, verdict, failed conditions."""
    settings = get_settings()
    url = settings.resolved_database_url
    database.upgrade(url)
    table = Table("audit #", "when (UTC)", "version", "phase", "verdict", "by", "failed / pending")
    for e in gates.history(url, model):
        problems = [f"{c.rule} ({'n/a' if c.value is None else f'{c.value:.3g}'})" for c in e.failed]
        problems += [f"{c.signal} pending ({c.sample}/{c.min_sample})" for c in e.pending]
        table.add_row(
            str(e.audit_seq),
            f"{e.evaluated_at:%Y-%m-%d %H:%M}",
            e.version,
            e.phase,
            e.verdict.value,
            e.evaluated_by,
            "; ".join(problems) or "-",
        )
    console.print(table)
    request = gate_actions.pending_request(url, model)
    if request is not None:
        console.print(
            f"pending approval: version {request.version} -> {request.to} (requested by {request.requested_by}, "
            f"audit #{request.audit_seq})"
        )


def approve(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    actor: Annotated[str, typer.Option(help="Who approves (recorded; not the requester).")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")],
    role: Annotated[str, typer.Option(help="governance or ml-engineer.")] = "governance",
) -> None:
    """Approve the pending advance of a challenger (into autonomous, or to champion) and carry it out."""
    settings = get_settings()
    database.upgrade(settings.resolved_database_url)
    try:
        policies = load_policies(settings.resolved_policies_dir)
        name = gates.full_name(model)
        if name not in policies:
            raise PolicyError(f"no phase policy for {name} in {settings.resolved_policies_dir}")
        action = gate_actions.approve(
            settings,
            model,
            policies[name],
            actor=actor,
            actor_role=role,
            reason=reason,  # type: ignore[arg-type]
        )
    except KNOWN_ERRORS as err:
        raise _fail(err) from None
    console.print(f"{action.action}: {action.detail} (audit #{action.audit_seq})")
