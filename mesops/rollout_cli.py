"""`mesops rollout`: see who answers for each model and move a challenger between phases (audited)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from governance import rollout
from governance.phase_policy import Phase, load_policies
from governance.registry import model_name
from mesops import database
from mesops.settings import get_settings

rollout_app = typer.Typer(
    help="Rollout phases of the challengers (shadow, approval, autonomous).", no_args_is_help=True
)
console = Console()
TASK_HELP = "Model: failure, yield or consumption."


@rollout_app.command("show")
def show() -> None:
    """Champion, challenger and the challenger's phase of every model, with the phase policy in force."""
    settings = get_settings()
    url = settings.resolved_database_url
    database.upgrade(url)
    policies = load_policies(settings.resolved_policies_dir)
    table = Table("model", "champion", "challenger", "phase", "challenger share", "policy")
    for task in ("failure", "yield", "consumption"):
        name = model_name(task)
        view = rollout.view(url, name)
        policy = policies.get(name)
        share = "-" if view.phase is None or policy is None else f"{policy.challenger_share(view.phase):.0%}"
        table.add_row(
            name,
            view.champion or "-",
            view.challenger or "-",
            "-" if view.phase is None else view.phase.value,
            share,
            "-" if policy is None else policy.ref,
        )
    console.print(table)


@rollout_app.command("phase")
def set_phase(
    model: Annotated[str, typer.Argument(help=TASK_HELP)],
    phase: Annotated[Phase, typer.Argument(help="The phase to put the challenger in.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")],
    actor: Annotated[str, typer.Option(help="Who decides (recorded in the audit trail).")] = "cli",
) -> None:
    """Put the model's challenger in a phase; the service follows within MESOPS_SERVING_REFRESH_S seconds."""
    settings = get_settings()
    url = settings.resolved_database_url
    database.upgrade(url)
    name = model_name(model.removeprefix("mesops-"))
    policies = load_policies(settings.resolved_policies_dir)
    if name not in policies:
        raise rollout.RolloutError(f"no phase policy for {name} in {settings.resolved_policies_dir}")
    entry = rollout.set_phase(
        url, name, phase, policies[name], actor=actor, actor_role="ml-engineer", reason=reason
    )
    console.print(
        f"{name}: challenger {entry.event.model_version} now in [bold]{phase.value}[/] "
        f"(was {entry.event.evidence['from_phase']}; audit #{entry.seq})"
    )
