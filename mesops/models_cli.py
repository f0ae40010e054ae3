"""`mesops models …`: list, inspect, trace and promote the registered forecasters."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mesops.settings import Settings, get_settings

models_app = typer.Typer(
    help="List, inspect, trace and promote registered forecasters.", no_args_is_help=True
)
console = Console()
TASKS = ("failure", "yield", "consumption")
ROLES = ("ml-engineer", "governance", "system")


class ModelsCliError(Exception):
    """A models command the user can correct; printed as one line, exit code 2."""


def _name(model: str) -> str:
    name = model if model.startswith("mesops-") else f"mesops-{model}"
    if name.removeprefix("mesops-") not in TASKS:
        raise ModelsCliError(f"model {model!r}: must be one of {', '.join(TASKS)} (or mesops-<task>)")
    return name


def _context() -> tuple[Settings, object, str]:
    from governance.registry import Registry
    from mesops import database

    settings = get_settings()
    url = settings.resolved_database_url
    database.upgrade(url)
    return settings, Registry.from_settings(settings), url


@models_app.command("list")
def models_list() -> None:
    """Every registered version of the three forecasters, with aliases and the headline metric vs baseline."""
    from governance.promotion import aliases

    _, registry, url = _context()
    view = Table(title="Registered forecasters")
    for column in (
        "model",
        "version",
        "aliases",
        "metric",
        "model value",
        "baseline",
        "ratio",
        "created (UTC)",
    ):
        view.add_column(column)
    for task in TASKS:
        name = f"mesops-{task}"
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases(url, name).items():
            by_version.setdefault(version, []).append(alias)
        for info in registry.versions(name):  # type: ignore[attr-defined]
            baseline = registry.report(name, info.version).baseline  # type: ignore[attr-defined]
            view.add_row(
                name,
                info.version,
                ", ".join(sorted(by_version.get(info.version, []))) or "-",
                baseline.metric,
                f"{baseline.model_value:.4f}",
                f"{baseline.baseline_value:.4f}",
                f"{baseline.ratio:.3f}",
                info.created.strftime("%Y-%m-%d %H:%M"),
            )
    console.print(
        view if view.row_count else "No registered versions yet: run `mesops demo` or `mesops train`."
    )


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="failure, yield or consumption.")],
    version: Annotated[str, typer.Argument(help="Version number or alias (champion, challenger).")],
) -> None:
    """One version's evaluation report: metrics, baseline, slices, calibration or coverage, threshold."""
    _, registry, _ = _context()
    name = _name(model)
    number = registry.resolve(name, version)  # type: ignore[attr-defined]
    console.print_json(registry.report(name, number).model_dump_json())  # type: ignore[attr-defined]


@models_app.command("lineage")
def models_lineage(
    model: Annotated[str, typer.Argument(help="failure, yield or consumption.")],
    version: Annotated[str, typer.Argument(help="Version number or alias.")],
) -> None:
    """The chain from the MES extracts through contracts and anonymization to the run and version; its audit."""
    from governance.lineage_view import lineage_chain

    settings, registry, url = _context()
    name = _name(model)
    number = registry.resolve(name, version)  # type: ignore[attr-defined]
    console.print(lineage_chain(settings, registry, name, number))
    console.print(audit_table(url, name))


@models_app.command("promote")
def models_promote(
    model: Annotated[str, typer.Argument(help="failure, yield or consumption.")],
    version: Annotated[str, typer.Argument(help="Version number to promote.")],
    actor: Annotated[str, typer.Option(help="Who decides (recorded in the audit trail).")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")],
    alias: Annotated[str, typer.Option(help="champion or challenger.")] = "champion",
    role: Annotated[str, typer.Option(help="ml-engineer or governance.")] = "ml-engineer",
) -> None:
    """Point an alias at a version if it exists, its lineage is complete and it beats its baseline (audited)."""
    from governance.promotion import PromotionError, promote

    _, registry, url = _context()
    if alias not in ("champion", "challenger"):
        raise ModelsCliError(f"--alias: must be champion or challenger, not {alias!r}")
    if role not in ROLES:
        raise ModelsCliError(f"--role: must be one of {', '.join(ROLES)}, not {role!r}")
    try:
        decision = promote(
            registry,
            url,
            _name(model),
            version,
            alias=alias,
            actor=actor,
            actor_role=role,
            reason=reason,  # type: ignore[arg-type]
        )
    except PromotionError as err:
        raise ModelsCliError(str(err)) from None
    console.print(
        f"{decision.model}@{decision.alias}: {decision.from_version or '-'} -> {decision.to_version} "
        f"(audit entry {decision.audit_seq})"
    )


@models_app.command("rollback")
def models_rollback(
    model: Annotated[str, typer.Argument(help="failure, yield or consumption.")],
    actor: Annotated[str, typer.Option(help="Who decides (recorded in the audit trail).")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")],
    role: Annotated[str, typer.Option(help="ml-engineer or governance.")] = "ml-engineer",
) -> None:
    """Restore the previous champion in one step (audited)."""
    from governance.promotion import PromotionError, rollback

    _, registry, url = _context()
    if role not in ROLES:
        raise ModelsCliError(f"--role: must be one of {', '.join(ROLES)}, not {role!r}")
    try:
        decision = rollback(registry, url, _name(model), actor=actor, actor_role=role, reason=reason)  # type: ignore[arg-type]
    except PromotionError as err:
        raise ModelsCliError(str(err)) from None
    console.print(
        f"{decision.model}@{decision.alias}: {decision.from_version} -> {decision.to_version} "
        f"(audit entry {decision.audit_seq})"
    )


def audit_table(url: str, model_name: str | None) -> Table:
    """Audit entries (all, or those about one model) as a table: when, who in which role, what, why."""
    from governance import audit

    view = Table(title="Audit trail" + (f" of {model_name}" if model_name else ""))
    for column in ("#", "when (UTC)", "who", "role", "action", "model", "version", "alias", "reason"):
        view.add_column(column)
    for entry in audit.entries(url, model_name=model_name):
        event = entry.event
        view.add_row(
            str(entry.seq),
            entry.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
            event.actor,
            event.actor_role,
            event.action,
            event.model_name or "-",
            event.model_version or "-",
            event.alias or "-",
            event.reason,
        )
    return view
