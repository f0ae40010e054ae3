"""`mesops report MODEL [VERSION]`: write the governance report of a model version (HTML and JSON)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

from governance.registry import UnknownVersionError
from governance.report import ReportError, build_report, write_report
from governance.report_document import GovernanceReport
from mesops import database
from mesops.settings import get_settings

console = Console()
err_console = Console(stderr=True)
KNOWN_ERRORS = (ReportError, UnknownVersionError)


def report(
    model: Annotated[str, typer.Argument(help="Model: failure, yield or consumption.")],
    version: Annotated[
        str | None,
        typer.Argument(
            help="Version number or alias (champion, challenger); default: the challenger, else the champion."
        ),
    ] = None,
) -> None:
    """Write the governance report of a model version: lineage, evidence, metrics, gates, approvals, rollbacks."""
    settings = get_settings()
    database.upgrade(settings.resolved_database_url)
    started = time.perf_counter()
    try:
        built = build_report(settings, model, version)
        html_path, json_path = write_report(settings, built)
    except KNOWN_ERRORS as err:
        err_console.print(f"[red]error:[/] {err}", soft_wrap=True)
        raise typer.Exit(2) from None
    seconds = time.perf_counter() - started
    console.print(_summary(built), soft_wrap=True, markup=False)
    console.print(f"html: {html_path} ({html_path.stat().st_size / 1024:.0f} KB)", soft_wrap=True)
    console.print(f"json: {json_path} ({json_path.stat().st_size / 1024:.0f} KB)", soft_wrap=True)
    console.print(f"built in {seconds:.1f} s", style="dim")


def _summary(built: GovernanceReport) -> str:
    """One line: the version and its rollout, the last gate verdict, the rollbacks, the audit chain."""
    last = built.gates[-1].evaluation if built.gates else None
    gate = f"{last.verdict.value} (audit #{last.audit_seq})" if last else "none yet"
    check = built.audit.verification
    chain = "verifies" if check.ok else f"does NOT verify: {check.problem}"
    return (
        f"{built.version.model_name} version {built.version.version} ({built.version.status}); "
        f"last gate: {gate}; rollbacks: {len(built.rollbacks)}; audit chain {chain}"
    )
