"""The `mesops` command line: run the data path, inspect contracts and quarantine, manage the platform database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mesops.bridge_cli import bridge
from mesops.gates_cli import approve, gates_app
from mesops.keys_cli import app as keys_app
from mesops.models_cli import ModelsCliError, models_app
from mesops.report_cli import report
from mesops.rollout_cli import rollout_app
from mesops.settings import Settings, get_settings
from mesops.up_cli import down, stack_status, up

app = typer.Typer(
    help="mesops: governed model lifecycle for manufacturing (MES extracts -> anonymized, contract-validated "
    "tables -> forecasters -> governed serving).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
contracts_app = typer.Typer(help="Inspect and release the versioned data contracts.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the platform database (SQLite by default, PostgreSQL in production).")
app.add_typer(contracts_app, name="contracts")
audit_app = typer.Typer(help="Read and verify the hash-chained audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(rollout_app, name="rollout")
app.add_typer(gates_app, name="gates")
app.command("approve")(approve)
app.command("report")(report)
app.command("bridge")(bridge)
app.command("up")(up)
app.command("down")(down)
app.command("stack")(stack_status)

console = Console()
err_console = Console(stderr=True)

SHARED_DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
REAL_DATASET_FILES = ("ai4i2020.csv", "steel_industry_energy.csv")


class CliError(Exception):
    """An error the user can fix; printed as one line, exit code 2."""


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as err:
        first = err.errors()[0]
        field = "MESOPS_" + str(first["loc"][0]).upper()
        raise CliError(f"{field}: {first['msg']}") from None


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command()
def demo(
    days: Annotated[int, typer.Option(help="Days of plant history to simulate.", min=1, max=400)] = 90,
    lines: Annotated[int, typer.Option(help="Production lines.", min=1, max=20)] = 2,
    machines_per_line: Annotated[int, typer.Option(help="Machines per line.", min=1, max=50)] = 6,
    defect_rate: Annotated[
        float, typer.Option(help="Share of rows with a planted defect.", min=0, max=0.5)
    ] = 0.01,
    mes: Annotated[
        str, typer.Option(help="MES shape of the simulated extract: opcenter or plex.")
    ] = "opcenter",
    seed: Annotated[int, typer.Option(help="Simulator seed (same seed, same bytes).")] = 7,
    real_datasets: Annotated[
        bool, typer.Option(help="Also ingest the public datasets in ../shared/datasets.")
    ] = True,
    train: Annotated[bool, typer.Option(help="Train, register and crown the three forecasters.")] = True,
    serve: Annotated[
        bool, typer.Option(help="Start the service and send it a day of MES requests and planner decisions.")
    ] = True,
) -> None:
    """Run the main job on the embedded default: simulate a plant, ingest its extracts, train and register
    models, then serve them a day of MES requests with planner feedback."""
    settings = _settings()
    settings.ensure_dirs()
    batch_dir = _simulate_into_landing(settings, days, lines, machines_per_line, defect_rate, mes, seed)
    console.print(f"[bold]Landed[/] simulated {mes} extract: {batch_dir.relative_to(settings.home)}")
    if real_datasets:
        _land_real_datasets(settings)
    _ingest_and_report(settings)
    if train:
        _train_and_report(settings)
        if serve:
            _serve_demo_day(settings)
            _monitor_and_report(settings)


def _serve_demo_day(settings: Settings) -> None:
    from governance.api_keys import create_key
    from serving.demo_day import run_demo_day
    from serving.server import ServerProcess, free_port

    url = settings.resolved_database_url
    keys = {role: create_key(url, role, f"demo {role}").key for role in ("integration", "planner")}
    process = ServerProcess(settings, port=free_port(settings.serving_host))
    with console.status("Starting the prediction service (BentoML)..."):
        process.start()
    try:
        with console.status(f"Sending a day of MES requests to {process.url} ..."):
            report = run_demo_day(settings.home, process.url, keys["integration"], keys["planner"])
    finally:
        process.stop()
    view = Table(title=f"A day of MES requests ({report.requests} answered)", title_justify="left")
    for column in ("model", "answered by", "requests"):
        view.add_column(column)
    for (model, arm), count in sorted(report.answers.items()):
        view.add_row(model, arm, str(count))
    console.print(view)
    console.print(
        "recommendations: "
        + ", ".join(f"{status} {n}" for status, n in sorted(report.statuses.items()))
        + "; planner decisions: "
        + (", ".join(f"{d} {n}" for d, n in sorted(report.decisions.items())) or "none")
    )
    console.print("outcomes: " + ", ".join(f"{what} {n}" for what, n in sorted(report.outcomes.items())))
    if report.errors:
        raise CliError(f"the service refused requests: {dict(report.errors)} (see {process.log_path})")


def _monitor_and_report(settings: Settings) -> None:
    """The Dagster monitor job (drift, signals, gate of every model), then a governance report per model."""
    from governance.report import build_report, write_report
    from pipelines.runner import run_monitoring

    with console.status("Monitoring: drift reports, signals and gate evaluations (Dagster)..."):
        run = run_monitoring(settings)
    view = Table(title=f"Gates (Dagster monitor run {run.run_id[:8]})", title_justify="left")
    for column in ("model", "verdict", "action", "audit entry", "detail"):
        view.add_column(column)
    for task in ("failure", "yield", "consumption"):
        outcome = run.gates.get(task)
        if outcome is None:
            view.add_row(task, "[red]not evaluated[/]", "", "", "gate step failed: see `mesops ui`")
            continue
        seq = "" if outcome.evaluation_audit_seq is None else f"#{outcome.evaluation_audit_seq}"
        view.add_row(task, outcome.verdict or "skipped", outcome.action or "", seq, outcome.detail)
    console.print(view)
    with console.status("Writing the governance reports..."):
        written = [
            write_report(settings, build_report(settings, task))
            for task in ("failure", "yield", "consumption")
        ]
    console.print("[bold]Governance reports[/] (open in a browser):")
    for html_path, json_path in written:
        console.print(f"  {html_path}  (+ {Path(json_path).name})")


def _train_and_report(settings: Settings) -> None:
    from pipelines.runner import train_models

    with console.status("Training the failure, yield and consumption forecasters and registering them..."):
        run = train_models(settings)
    view = Table(title=f"Training (Dagster run {run.run_id[:8]})", title_justify="left")
    for column in ("forecaster", "beats baseline", "registered"):
        view.add_column(column)
    for task in ("failure", "yield", "consumption"):
        check = run.checks.get(f"candidate/{task}:beats_baseline")
        registered = f"registered__{task}" not in run.failed_steps and check is True
        view.add_row(
            task, {True: "yes", False: "NO", None: "not evaluated"}[check], "yes" if registered else "no"
        )
    console.print(view)
    from mesops.models_cli import models_list

    models_list()
    if not run.success:
        raise CliError(
            f"training did not complete: failed steps {', '.join(run.failed_steps) or '(see mesops ui)'}"
        )


def _simulate_into_landing(
    settings: Settings, days: int, lines: int, machines: int, defect_rate: float, mes: str, seed: int
) -> Path:
    from pipelines.landing import new_batch_id
    from pipelines.simulator import SimulationConfig, emit_extracts, simulate

    if mes not in ("opcenter", "plex", "file"):
        raise CliError(f"--mes: must be opcenter, plex or file, not {mes!r}")
    config = SimulationConfig(
        seed=seed, days=days, lines=lines, machines_per_line=machines, defect_rate=defect_rate
    )
    with console.status(f"Simulating {days} days of a plant with {lines} lines x {machines} machines..."):
        history = simulate(config)
    batch_id = new_batch_id(mes)
    return emit_extracts(history, settings.landing_dir / mes / batch_id, mes=mes, batch_id=batch_id)


def _land_real_datasets(settings: Settings) -> None:
    from data_contracts.contract import load_contracts
    from pipelines.landing import land_files

    files = [SHARED_DATASETS / name for name in REAL_DATASET_FILES if (SHARED_DATASETS / name).exists()]
    if not files:
        console.print(f"[yellow]Skipping real datasets: none found in {SHARED_DATASETS}[/]")
        return
    batch_dir = land_files(files, settings.landing_dir, load_contracts(settings.resolved_contracts_dir))
    console.print(
        f"[bold]Landed[/] {', '.join(f.name for f in files)}: {batch_dir.relative_to(settings.home)}"
    )


def _ingest_and_report(settings: Settings, batch_ids: list[str] | None = None) -> None:
    from pipelines.runner import ingest_batches

    with _progress() as progress:
        task = progress.add_task("Ingesting landing batches", total=None)
        done: list[str] = []

        def on_batch(batch_id: str) -> None:
            progress.update(task, description=f"Ingesting {batch_id}", completed=len(done))
            done.append(batch_id)

        runs = ingest_batches(settings, batch_ids, on_batch=on_batch)
        progress.update(task, total=len(runs), completed=len(runs), description="Ingested landing batches")
    if not runs:
        console.print("No new complete batch in the landing zone.")
        return
    failed = False
    for run in runs:
        _print_run(run)
        failed = failed or not run.success
    if failed:
        raise CliError("a run failed; see the failed steps above and `mesops ui` for their logs")


def _print_run(run) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"batch {run.batch_id}  (Dagster run {run.run_id[:8]})", title_justify="left")
    table.add_column("table", no_wrap=True)
    table.add_column("contract", no_wrap=True)
    for column in ("landed", "valid", "quarantined"):
        table.add_column(column, justify="right")
    table.add_column("quarantined by column and rule")
    absent = []
    for load in run.loads:
        if load.landed == 0:
            absent.append(load.table_name)
            continue
        table.add_row(
            load.table_name,
            load.contract_ref.split("@")[1],
            str(load.landed),
            str(load.valid),
            str(load.quarantined),
            _reasons_text(load.reasons),
        )
    console.print(table)
    if absent:
        console.print(f"[dim]not in this batch: {', '.join(absent)}[/]")
    if not run.success:
        err_console.print(f"[red]failed steps:[/] {', '.join(run.failed_steps) or 'see the Dagster run'}")


def _reasons_text(reasons: dict[str, int]) -> str:
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    return "\n".join(f"{reason}: {rows}" for reason, rows in ranked) or "-"


@app.command()
def simulate(
    days: Annotated[int, typer.Option(help="Days of plant history.", min=1, max=400)] = 28,
    lines: Annotated[int, typer.Option(help="Production lines.", min=1, max=20)] = 2,
    machines_per_line: Annotated[int, typer.Option(help="Machines per line.", min=1, max=50)] = 6,
    defect_rate: Annotated[
        float, typer.Option(help="Share of rows with a planted defect.", min=0, max=0.5)
    ] = 0.0,
    mes: Annotated[str, typer.Option(help="Extract shape: opcenter, plex or file.")] = "opcenter",
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
) -> None:
    """Simulate a plant's MES history and drop it into the landing zone as one batch (not yet ingested)."""
    settings = _settings()
    settings.ensure_dirs()
    batch_dir = _simulate_into_landing(settings, days, lines, machines_per_line, defect_rate, mes, seed)
    console.print(f"Landed {batch_dir}")


@app.command()
def land(
    files: Annotated[
        list[Path] | None, typer.Argument(help="CSV/Parquet files named after a contract's file entity.")
    ] = None,
    odata_url: Annotated[
        str | None, typer.Option(help="Pull every mapped entity set from this Opcenter OData endpoint.")
    ] = None,
) -> None:
    """Bring MES extracts into the landing zone as a new batch: file drops, or a pull from an OData endpoint."""
    from data_contracts.contract import load_contracts
    from pipelines.adapters.opcenter import ODataClient
    from pipelines.landing import land_files, land_odata

    settings = _settings()
    settings.ensure_dirs()
    contracts = load_contracts(settings.resolved_contracts_dir)
    if bool(files) == bool(odata_url):
        raise CliError("give either files to drop or --odata-url, not both or neither")
    if odata_url:
        client = ODataClient(odata_url, page_size=settings.odata_page_size, timeout_s=settings.http_timeout_s)
        batch_dir = land_odata(client, settings.landing_dir, contracts, settings.odata_page_size)
    else:
        batch_dir = land_files(files or [], settings.landing_dir, contracts)
    console.print(f"Landed batch {batch_dir.name} in {batch_dir.parent}")


@app.command()
def ingest(
    batch: Annotated[
        list[str] | None, typer.Option(help="Batch id to (re)ingest; default: every new batch.")
    ] = None,
) -> None:
    """Run the Dagster ingest job (land, anonymize, validate) on new landing batches and print the counts."""
    _ingest_and_report(_settings(), batch)


@app.command()
def train() -> None:
    """Train the three forecasters on every curated batch; register those that beat their baseline (Dagster)."""
    _train_and_report(_settings())


@app.command()
def status() -> None:
    """Show the latest counts of every table: landed, valid, quarantined by reason, per batch."""
    from sqlalchemy import select

    from mesops import database
    from mesops.tables import TableLoad

    settings = _settings()
    database.upgrade(settings.resolved_database_url)
    with database.session_scope(settings.resolved_database_url) as session:
        loads = list(session.scalars(select(TableLoad).order_by(TableLoad.created_at)))
    latest = {(load.batch_id, load.table_name): load for load in loads}
    table = Table(title="Latest load of each table and batch")
    for column in ("batch", "table", "contract", "landed", "valid", "quarantined", "by reason"):
        table.add_column(column)
    for (batch_id, name), load in sorted(latest.items()):
        table.add_row(
            batch_id,
            name,
            load.contract_ref,
            str(load.landed),
            str(load.valid),
            str(load.quarantined),
            _reasons_text(load.reasons),
        )
    console.print(table if latest else "Nothing ingested yet: run `mesops demo` or `mesops ingest`.")


@app.command()
def quarantine(
    table: Annotated[str, typer.Argument(help="Canonical table name, e.g. sensor_readings.")],
    limit: Annotated[int, typer.Option(help="Rows to show.", min=1)] = 20,
) -> None:
    """Show quarantined rows of a table with the reasons each broke its contract."""
    from data_contracts.contract import load_contracts
    from data_contracts.landed import issues_from_json
    from pipelines.zones import ZoneStore

    settings = _settings()
    if table not in load_contracts(settings.resolved_contracts_dir):
        raise CliError(f"table {table!r}: no contract of that name (see `mesops contracts list`)")
    rows = ZoneStore(settings.home).read_all("quarantine", table)
    if rows.empty:
        console.print(f"No quarantined rows for {table}.")
        return
    view = Table(title=f"{len(rows)} quarantined rows of {table} (showing {min(limit, len(rows))})")
    view.add_column("batch row")
    view.add_column("source")
    view.add_column("reasons")
    for _, row in rows.head(limit).iterrows():
        reasons = "; ".join(v.describe() for v in issues_from_json(row["_reasons"]))
        view.add_row(str(row["_landing_row"]), str(row["_source"]), reasons)
    console.print(view)


@contracts_app.command("list")
def contracts_list() -> None:
    """List every data contract with its version, columns and sources."""
    from data_contracts.contract import load_contracts

    settings = _settings()
    view = Table(title=f"Data contracts in {settings.resolved_contracts_dir}")
    for column in ("table", "version", "columns", "personal data", "sources", "landing only"):
        view.add_column(column)
    for name, contract in load_contracts(settings.resolved_contracts_dir).items():
        personal = [c.name for c in contract.columns if c.personal != "none"]
        sources = ", ".join(f"{m.kind}:{m.entity}" for m in contract.sources.values())
        view.add_row(
            name,
            contract.version,
            str(len(contract.columns)),
            ", ".join(personal) or "-",
            sources,
            "yes" if contract.landing_only else "",
        )
    console.print(view)


@contracts_app.command("show")
def contracts_show(table: Annotated[str, typer.Argument(help="Canonical table name.")]) -> None:
    """Print one contract as JSON (columns, rules, personal data, source field mappings)."""
    from data_contracts.contract import load_contracts

    contracts = load_contracts(_settings().resolved_contracts_dir)
    if table not in contracts:
        raise CliError(f"table {table!r}: no contract of that name (known: {', '.join(contracts)})")
    console.print_json(json.dumps(contracts[table].model_dump(mode="json")))


@contracts_app.command("check")
def contracts_check() -> None:
    """Compare every contract with its newest released version: a change needs a bump, a breaking one a major."""
    from data_contracts.compatibility import check_version_bump, newest_released
    from data_contracts.contract import load_contracts

    problems = []
    for name, contract in load_contracts(_settings().resolved_contracts_dir).items():
        released = newest_released(name)
        if released is None:
            problems.append(f"{name}: never released (run `mesops contracts release {name}`)")
            continue
        problems += [f"{name}: {problem}" for problem in check_version_bump(released, contract)]
    if problems:
        raise CliError("; ".join(problems))
    console.print("Every contract matches its released version or is bumped correctly.")


@contracts_app.command("release")
def contracts_release(table: Annotated[str, typer.Argument(help="Canonical table name.")]) -> None:
    """Record the current version of a contract as released (refused if it breaks consumers without a major bump)."""
    from data_contracts.compatibility import release_contract

    path = _settings().resolved_contracts_dir / f"{table}.yaml"
    if not path.exists():
        raise CliError(f"table {table!r}: no contract file {path}")
    console.print(f"Released {release_contract(path)}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the platform database schema in place (Alembic); existing rows are kept."""
    from mesops import database

    url = _settings().resolved_database_url
    database.upgrade(url)
    console.print("Platform database is at the latest schema.")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check every audit entry's hash, the chain and the head; name the first edited, deleted or moved entry."""
    from governance import audit
    from mesops import database

    url = _settings().resolved_database_url
    database.upgrade(url)
    result = audit.verify(url)
    if not result.ok:
        raise CliError(f"audit trail does not verify: {result.problem}")
    console.print(f"Audit trail verifies: {result.entries} entries, chain and head intact.")


@audit_app.command("list")
def audit_list(
    model: Annotated[str | None, typer.Option(help="Only entries about this model.")] = None,
) -> None:
    """List audit entries: when, who (role), what, on which model version, why."""
    from mesops import database
    from mesops.models_cli import audit_table

    url = _settings().resolved_database_url
    database.upgrade(url)
    console.print(audit_table(url, model))


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000) -> None:
    """Open the Dagster UI on this installation's instance (assets, checks, runs, the landing sensor)."""
    from pipelines.instance import prepare_dagster_home

    settings = _settings()
    prepare_dagster_home(settings)
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "pipelines.definitions",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    raise typer.Exit(subprocess.call(command))


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default MESOPS_SERVING_PORT, 3000).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface (default MESOPS_SERVING_HOST).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default MESOPS_SERVING_WORKERS).")
    ] = None,
) -> None:
    """Start the prediction service (BentoML) on this installation; Ctrl-C stops it."""
    from serving.server import REPO_ROOT, server_command, server_environment

    settings = _settings()
    settings.ensure_dirs()
    chosen_host, chosen_port = host or settings.serving_host, port or settings.serving_port
    console.print(
        f"serving on http://{chosen_host}:{chosen_port} (OpenAPI at /docs.json, keys: mesops keys create)"
    )
    command = server_command(settings, chosen_host, chosen_port)
    raise typer.Exit(subprocess.call(command, env=server_environment(settings, workers), cwd=REPO_ROOT))


@app.command("mlflow-ui")
def mlflow_ui(port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000) -> None:
    """Open the MLflow UI on this installation's tracking store and registry (runs, versions, aliases, lineage)."""
    settings = _settings()
    root = settings.home / "mlflow"
    store = settings.mlflow_tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
    artifacts = settings.mlflow_artifact_location or str(root / "artifacts")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        store,
        "--default-artifact-root",
        artifacts,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    raise typer.Exit(subprocess.call(command))


def main() -> None:
    """Entry point: run the CLI, turning known errors into one line and exit code 2."""
    from data_contracts.contract import ContractError
    from mesops.database import DatabaseError

    try:
        app()
    except (
        CliError,
        ModelsCliError,
        ContractError,
        DatabaseError,
        LookupError,
        ValueError,
        FileNotFoundError,
    ) as err:
        err_console.print(f"[red]error:[/] {err}")
        sys.exit(2)


if __name__ == "__main__":
    main()
