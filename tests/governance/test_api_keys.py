"""API keys: only a hash is stored, revocation takes a key out of the active set, and every change is audited."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from governance import api_keys, audit
from mesops import database
from mesops.keys_cli import app as keys_app

KEY_PATTERN = re.compile(r"mk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def url(settings) -> str:  # type: ignore[no-untyped-def]
    database.upgrade(settings.resolved_database_url)
    return settings.resolved_database_url


def _database_bytes(url: str) -> bytes:
    database.get_engine(url).dispose()  # let SQLite finish writing; the WAL file is read as well
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_created_key_has_its_format_and_is_listed_without_secrets(url: str) -> None:
    created = api_keys.create_key(url, "planner", "line 2 planning board")
    assert KEY_PATTERN.fullmatch(created.key) and created.key.split("_")[1] == created.key_id
    assert created.key not in repr(created)
    [info] = api_keys.list_keys(url)
    assert info == api_keys.KeyInfo(
        key_id=created.key_id, role="planner", label="line 2 planning board", created_at=info.created_at
    )
    assert info.created_at == created.created_at
    assert set(api_keys.KeyInfo.model_fields) == {"key_id", "role", "label", "created_at", "revoked_at"}


def test_keys_are_random(url: str) -> None:
    first, second = (api_keys.create_key(url, "integration", "mes") for _ in range(2))
    assert first.key_id != second.key_id and first.key != second.key


def test_plaintext_is_never_stored_only_its_sha256(url: str) -> None:
    created = api_keys.create_key(url, "integration", "opcenter connector")
    stored = _database_bytes(url)
    secret = created.key.split("_", 2)[2]
    assert api_keys.hash_key(created.key).encode() in stored  # the search looks at the right bytes
    assert created.key.encode() not in stored
    assert secret.encode() not in stored


def test_active_keys_maps_the_hash_and_drops_revoked_keys(url: str) -> None:
    kept = api_keys.create_key(url, "integration", "mes")
    gone = api_keys.create_key(url, "governance", "quarterly review")
    active = api_keys.active_keys(url)
    assert set(active) == {api_keys.hash_key(kept.key), api_keys.hash_key(gone.key)}
    assert active[api_keys.hash_key(gone.key)].role == "governance"

    revoked = api_keys.revoke_key(url, gone.key_id)
    assert revoked.revoked_at is not None and revoked.revoked_at >= gone.created_at
    assert list(api_keys.active_keys(url)) == [api_keys.hash_key(kept.key)]
    assert {i.key_id: i.revoked_at for i in api_keys.list_keys(url)} == {
        kept.key_id: None,
        gone.key_id: revoked.revoked_at,
    }


def test_revoking_twice_is_idempotent_and_audited_once(url: str) -> None:
    created = api_keys.create_key(url, "planner", "planning")
    first = api_keys.revoke_key(url, created.key_id)
    again = api_keys.revoke_key(url, created.key_id)
    assert again == first
    assert [e.event.action for e in audit.entries(url)] == ["create_api_key", "revoke_api_key"]


def test_unknown_key_id_is_refused(url: str) -> None:
    with pytest.raises(api_keys.UnknownKeyError, match="'00000000': no such key id"):
        api_keys.revoke_key(url, "00000000")


def test_the_whole_key_is_refused_as_key_id_without_echoing_it(url: str) -> None:
    created = api_keys.create_key(url, "planner", "planning")
    with pytest.raises(ValueError, match="not the key itself") as raised:
        api_keys.revoke_key(url, created.key)
    assert created.key not in str(raised.value)
    assert list(api_keys.active_keys(url))  # still active


@pytest.mark.parametrize("role", ["system", "admin", "ML-ENGINEER", ""])
def test_bad_role_names_the_allowed_ones_and_creates_nothing(url: str, role: str) -> None:
    with pytest.raises(ValueError, match="must be one of integration, planner, ml-engineer, governance"):
        api_keys.create_key(url, role, "anything")
    assert api_keys.list_keys(url) == [] and list(audit.entries(url)) == []


@pytest.mark.parametrize("label", ["", "   ", "x" * 121])
def test_bad_label_is_refused(url: str, label: str) -> None:
    with pytest.raises(ValueError, match="label: must be 1 to 120 characters"):
        api_keys.create_key(url, "planner", label)


def test_audit_entries_name_the_key_id_never_the_key_or_its_hash(url: str) -> None:
    created = api_keys.create_key(url, "ml-engineer", "reload job", actor="ops-team", actor_role="governance")
    api_keys.revoke_key(url, created.key_id)
    entries = list(audit.entries(url))
    assert [(e.event.action, e.event.actor, e.event.actor_role) for e in entries] == [
        ("create_api_key", "ops-team", "governance"),
        ("revoke_api_key", "cli", "ml-engineer"),
    ]
    assert all(e.event.evidence["key_id"] == created.key_id for e in entries)
    recorded = "".join(e.model_dump_json() for e in entries)
    for forbidden in (created.key, created.key.split("_", 2)[2], api_keys.hash_key(created.key)):
        assert forbidden not in recorded
    assert audit.verify(url).ok


@pytest.mark.postgres
def test_keys_on_postgresql(postgres_database: str) -> None:
    database.upgrade(postgres_database)
    created = api_keys.create_key(postgres_database, "integration", "mes")
    assert api_keys.active_keys(postgres_database)[api_keys.hash_key(created.key)].key_id == created.key_id
    revoked = api_keys.revoke_key(postgres_database, created.key_id)
    assert revoked.revoked_at is not None and api_keys.active_keys(postgres_database) == {}
    assert api_keys.revoke_key(postgres_database, created.key_id) == revoked


# --- the `mesops keys` commands ------------------------------------------------------------------------
def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(keys_app, list(args), env={"COLUMNS": "200"})


def test_cli_create_prints_the_key_once_and_it_is_active(settings) -> None:  # type: ignore[no-untyped-def]
    result = _invoke("create", "--role", "integration", "--label", "opcenter connector")
    assert result.exit_code == 0, result.output
    [key] = KEY_PATTERN.findall(result.stdout)
    assert "cannot be shown again" in result.stdout
    url = settings.resolved_database_url
    assert api_keys.active_keys(url)[api_keys.hash_key(key)].label == "opcenter connector"

    listed = _invoke("list")
    assert (
        listed.exit_code == 0 and key.split("_")[1] in listed.stdout and "opcenter connector" in listed.stdout
    )
    assert key not in listed.stdout and api_keys.hash_key(key) not in listed.stdout


def test_cli_create_json_and_revoke(settings) -> None:  # type: ignore[no-untyped-def]
    import json

    created = json.loads(_invoke("create", "--role", "planner", "--label", "planning", "--json").stdout)
    assert set(created) == {"key_id", "role", "label", "created_at", "key"} and created["role"] == "planner"

    result = _invoke("revoke", created["key_id"], "--actor-role", "governance")
    assert result.exit_code == 0, result.output
    assert f"API key {created['key_id']} (planner: planning) revoked" in result.stdout
    assert api_keys.active_keys(settings.resolved_database_url) == {}
    assert [e.event.actor_role for e in audit.entries(settings.resolved_database_url)] == [
        "ml-engineer",
        "governance",
    ]
    assert _invoke("revoke", created["key_id"]).exit_code == 0  # idempotent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "--role", "system", "--label", "x"), "must be one of integration, planner"),
        (("create", "--role", "planner", "--label", "x", "--actor-role", "planner"), "--actor-role: must be"),
        (("revoke", "deadbeef"), "no such key id"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(settings, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    result = _invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_cli_list_without_keys_says_how_to_create_one(settings) -> None:  # type: ignore[no-untyped-def]
    result = _invoke("list")
    assert result.exit_code == 0 and "mesops keys create" in result.stdout
