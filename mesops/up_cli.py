"""`mesops up` / `down` / `stack`: run the production stack on this machine (PostgreSQL, replicas, Dagster).

Registered in mesops/cli.py; also runnable on its own: ``python -m mesops.up_cli up --replicas 2``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from mesops.settings import get_settings
from mesops.stack import (
    Stack,
    StackConfig,
    StackError,
    production_profile,
    read_state,
    signal_stop,
)

console = Console()
err_console = Console(stderr=True)
app = typer.Typer(
    help="Run the production stack on this machine.", no_args_is_help=True, add_completion=False
)


class _Stop(Exception):
    """SIGTERM or SIGINT reached the supervisor: stop the stack."""


@contextmanager
def _one_line_errors() -> Iterator[None]:
    from mesops.database import DatabaseError

    try:
        yield
    except ValidationError as err:
        first = err.errors()[0]
        raise _fail(f"MESOPS_{str(first['loc'][0]).upper()}: {first['msg']}") from None
    except (StackError, DatabaseError) as err:
        raise _fail(str(err)) from None


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    # once: a second Ctrl-C must not interrupt the stop and leave replicas or Dagster processes behind
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise _Stop(signal.Signals(signum).name)


def _status_table(stack: Stack) -> Table:
    table = Table("component", "pid", "url", "state")
    states = stack.status()
    for component in stack.components:
        table.add_row(component.name, str(component.pid()), component.url() or "-", states[component.name])
    return table


def up(
    replicas: Annotated[
        int | None,
        typer.Option(
            help="Prediction service replicas, on consecutive ports (default MESOPS_UP_REPLICAS, 2).", min=1
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port of the first replica (default MESOPS_SERVING_PORT).")
    ] = None,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            help="The PostgreSQL server (default MESOPS_UP_POSTGRES_URL, the local one): databases <prefix>, "
            "<prefix>_mlflow, <prefix>_dagster are created on it when absent (URLs set in MESOPS_DATABASE_URL / "
            "_MLFLOW_TRACKING_URI / _DAGSTER_POSTGRES_URL win).",
        ),
    ] = None,
    database_prefix: Annotated[
        str | None,
        typer.Option(help="Prefix of the databases created (default MESOPS_UP_DATABASE_PREFIX, mesops)."),
    ] = None,
    artifacts: Annotated[
        str | None,
        typer.Option(
            help="Shared folder of MLflow artifacts (default MESOPS_MLFLOW_ARTIFACT_LOCATION, "
            "else MESOPS_HOME/artifacts)."
        ),
    ] = None,
    dagster: Annotated[
        bool, typer.Option(help="Run the Dagster daemon (schedules, sensors) and webserver.")
    ] = True,
    dagster_port: Annotated[
        int | None, typer.Option(help="Port of the Dagster webserver (default MESOPS_UP_DAGSTER_PORT, 3070).")
    ] = None,
    bridge_workers: Annotated[
        int | None,
        typer.Option(
            help="Event bridge workers (needs `mesops bridge`; default MESOPS_UP_BRIDGE_WORKERS, 0).", min=0
        ),
    ] = None,
    check_every_s: Annotated[float, typer.Option(help="Seconds between health checks.", min=0.5)] = 5.0,
) -> None:
    """Start the production stack (PostgreSQL stores, service replicas, Dagster) and supervise it; Ctrl-C stops it.

    Every option left out comes from the settings (MESOPS_UP_*), like everything else mesops reads.
    """
    with _one_line_errors():
        settings = get_settings()
        if read_state(settings.home) is not None:
            raise StackError(f"a stack is already running on {settings.home} (mesops down stops it)")
        profile = production_profile(
            settings,
            postgres_url or settings.up_postgres_url,
            database_prefix or settings.up_database_prefix,
            artifacts,
        )
        config = StackConfig(
            replicas=settings.up_replicas if replicas is None else replicas,
            host=settings.serving_host,
            first_port=port or settings.serving_port,
            dagster=dagster,
            dagster_port=dagster_port or settings.up_dagster_port,
            bridge_workers=settings.up_bridge_workers if bridge_workers is None else bridge_workers,
        )
        stack = Stack(profile, settings, config)
        previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            stack.start(on_step=lambda step: console.print(f"[dim]up:[/] {step}"))
            console.print(_status_table(stack))
            console.print("the stack is up; Ctrl-C or `mesops down` stops it")
            while not (failed := stack.failed()):
                time.sleep(check_every_s)
            raise StackError("stopping the stack: " + "; ".join(f"{n} {s}" for n, s in failed.items()))
        except _Stop as stop:
            console.print(f"up: {stop} received, stopping every component")
        finally:
            stack.stop(on_step=lambda step: console.print(f"[dim]down:[/] {step}"))
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        console.print("the stack is stopped")


def down() -> None:
    """Stop the stack `mesops up` runs on this MESOPS_HOME (every replica, Dagster process and bridge worker)."""
    with _one_line_errors():
        if not signal_stop(get_settings().home):
            raise StackError("no stack is running on this MESOPS_HOME")
    console.print("the stack is stopped")


def stack_status() -> None:
    """Each component of the running stack, its process and whether it answers."""
    import httpx

    with _one_line_errors():
        state = read_state(get_settings().home)
        if state is None:
            raise StackError("no stack is running on this MESOPS_HOME (mesops up starts one)")
    table = Table("component", "pid", "url", "state")
    for component in state["components"]:  # type: ignore[attr-defined]
        url = component["url"]
        probe = f"{url}/readyz" if component["name"].startswith("service") else url
        state_text = "running"
        if probe:
            try:
                code = httpx.get(probe, timeout=2).status_code
                state_text = "ready" if code == 200 else f"not ready (HTTP {code})"
            except httpx.TransportError:
                state_text = "not answering"
        table.add_row(component["name"], str(component["pid"]), url or "-", state_text)
    console.print(table)


app.command("up")(up)
app.command("down")(down)
app.command("stack")(stack_status)

if __name__ == "__main__":
    app()
