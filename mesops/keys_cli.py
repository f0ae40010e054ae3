"""`mesops keys …`: create, list and revoke the API keys of the served API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mesops.settings import Settings, get_settings

app = typer.Typer(help="Create, list and revoke API keys of the served API.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)
OPERATOR_ROLES = ("ml-engineer", "governance")


class KeysCliError(Exception):
    """A keys command the user can correct; printed as one line, exit code 2."""


@contextmanager
def _one_line_errors() -> Iterator[None]:
    # Handled here rather than in mesops.cli.main so the sub-app behaves the same when run on its own.
    from governance.api_keys import UnknownKeyError
    from mesops.database import DatabaseError

    try:
        yield
    except ValidationError as err:
        first = err.errors()[0]
        raise _fail(f"MESOPS_{str(first['loc'][0]).upper()}: {first['msg']}") from None
    except (KeysCliError, UnknownKeyError, DatabaseError, ValueError) as err:
        raise _fail(str(err)) from None


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _context() -> tuple[Settings, str]:
    from mesops import database

    settings = get_settings()
    url = settings.resolved_database_url
    database.upgrade(url)
    return settings, url


def _check_operator_role(actor_role: str) -> None:
    if actor_role not in OPERATOR_ROLES:
        raise KeysCliError(f"--actor-role: must be one of {', '.join(OPERATOR_ROLES)}, not {actor_role!r}")


ActorOption = Annotated[str, typer.Option(help="Who acts (recorded in the audit trail).")]
ActorRoleOption = Annotated[str, typer.Option(help="Role the operator acts in: ml-engineer or governance.")]


@app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="integration, planner, ml-engineer or governance.")],
    label: Annotated[str, typer.Option(help="What the key is for: a system or team, not a person's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the new key as one JSON object.")] = False,
    actor: ActorOption = "cli",
    actor_role: ActorRoleOption = "ml-engineer",
) -> None:
    """Create an API key for a role and print it once (only its sha256 is kept; audited)."""
    from governance.api_keys import create_key

    with _one_line_errors():
        _check_operator_role(actor_role)
        _, url = _context()
        created = create_key(url, role, label, actor=actor, actor_role=actor_role)  # type: ignore[arg-type]
    if as_json:
        typer.echo(created.model_dump_json())
        return
    body = Text.assemble(
        (created.key, "bold"),
        f"\n\nKey id {created.key_id}. Store the key now: it cannot be shown again.\n"
        "Send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`.",
    )
    console.print(Panel(body, title=f"New {created.role} key: {created.label}", expand=False))


@app.command("list")
def keys_list() -> None:
    """Every API key: id, role, label, when created and revoked (never the key or its hash)."""
    from governance.api_keys import list_keys

    with _one_line_errors():
        keys = list_keys(_context()[1])
    if not keys:
        console.print("No API keys yet: create one with `mesops keys create --role ROLE --label TEXT`.")
        return
    view = Table(title="API keys of the served API")
    for column in ("key_id", "role", "label", "created (UTC)", "revoked (UTC)"):
        view.add_column(column, no_wrap=True)  # ids and labels are copied from here: never split them
    for info in keys:
        view.add_row(info.key_id, info.role, info.label, _when(info.created_at), _when(info.revoked_at))
    Console().print(view)  # made now, so it takes the terminal width of this call


@app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The 8-hex key id shown by `mesops keys list`.")],
    actor: ActorOption = "cli",
    actor_role: ActorRoleOption = "ml-engineer",
) -> None:
    """Revoke a key (audited); the service refuses it after its next refresh. Revoking twice is harmless."""
    from governance.api_keys import revoke_key

    with _one_line_errors():
        _check_operator_role(actor_role)
        settings, url = _context()
        info = revoke_key(url, key_id, actor=actor, actor_role=actor_role)  # type: ignore[arg-type]
    console.print(
        f"API key {info.key_id} ({info.role}: {info.label}) revoked at {_when(info.revoked_at)} UTC; "
        f"a running service refuses it within {settings.serving_refresh_s:g} s."
    )


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")
