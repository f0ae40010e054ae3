"""In-place upgrades: a platform database made by an earlier schema keeps every row when upgraded to head.

The rows are built from the reflected schema of the old revision (one row per table, a value per column type),
so a new migration is covered without touching this file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from mesops import database

VERSION_TABLE = "mesops_alembic_version"
TAG_NUMBERS = {"old": 1, "new": 2}


def _revisions() -> list[str]:
    """Every revision id, oldest first."""
    script = ScriptDirectory.from_config(database.alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


REVISIONS = _revisions()
EARLIER = REVISIONS[
    :-1
]  # every revision an installation may still be at; the last one is the previous schema


def _tables(url: str) -> dict[str, sa.Table]:
    """The platform tables as they exist in the database right now (reflected, not the ORM's view)."""
    metadata = sa.MetaData()
    metadata.reflect(database.get_engine(url))
    return {name: table for name, table in metadata.tables.items() if name != VERSION_TABLE}


def _value(column: sa.Column[Any], tag: str) -> Any:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Integer):
        return TAG_NUMBERS[tag]  # differs between the old and the new row, so keys do not collide
    if isinstance(kind, sa.Float | sa.Numeric):
        return 1.5
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    if isinstance(kind, sa.JSON):
        return {"tag": tag, "values": [1, 2]}
    if isinstance(kind, sa.String):
        text = f"{tag}-{column.name}"
        return text[: kind.length] if kind.length else text
    raise AssertionError(f"column {column.table.name}.{column.name}: no test value for type {kind!r}")


def _insert_one_row_each(url: str, tables: dict[str, sa.Table], tag: str) -> dict[str, dict[str, Any]]:
    rows = {name: {c.name: _value(c, tag) for c in table.columns} for name, table in tables.items()}
    with database.get_engine(url).begin() as connection:
        for name, table in tables.items():
            connection.execute(table.insert().values(**rows[name]))
    return rows


def _read(url: str, tables: dict[str, sa.Table]) -> dict[str, list[dict[str, Any]]]:
    """Every row of the given tables, restricted to the given tables' columns, in a stable order."""
    with database.get_engine(url).connect() as connection:
        return {
            name: sorted(
                (dict(row._mapping) for row in connection.execute(sa.select(*table.columns))),
                key=repr,
            )
            for name, table in tables.items()
        }


def _current_revision(url: str) -> str:
    with database.get_engine(url).connect() as connection:
        return str(connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one())


def _upgrade_keeps_rows(url: str, start: str) -> None:
    database.upgrade(url, start)
    assert _current_revision(url) == start
    old_tables = _tables(url)
    assert old_tables, f"revision {start} created no tables"
    _insert_one_row_each(url, old_tables, "old")
    before = _read(url, old_tables)
    assert all(len(rows) == 1 for rows in before.values())

    database.upgrade(url)

    assert _current_revision(url) == REVISIONS[-1]
    head_tables = _tables(url)
    assert set(old_tables) <= set(head_tables), "an upgrade dropped a table"
    # the old rows are still there with every old column's value, read through the upgraded tables
    assert _read(url, {name: head_tables[name] for name in old_tables}) == before
    # and the upgraded schema takes new rows in every table, old and new alike
    written = _insert_one_row_each(url, head_tables, "new")
    after = _read(url, head_tables)
    for name in head_tables:
        assert len(after[name]) == len(before.get(name, [])) + 1, name
        strings = {k: v for k, v in written[name].items() if isinstance(v, str)}
        assert strings, f"{name}: no text column to find the new row by"
        assert any(all(row[k] == v for k, v in strings.items()) for row in after[name]), name


@pytest.mark.parametrize("start", EARLIER)
def test_sqlite_upgrade_from_earlier_revision_keeps_rows(tmp_path, start: str) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    _upgrade_keeps_rows(url, start)


@pytest.mark.postgres
@pytest.mark.parametrize("start", EARLIER)
def test_postgres_upgrade_from_earlier_revision_keeps_rows(
    make_postgres_database: Callable[[], str], start: str
) -> None:
    url = make_postgres_database()
    try:
        _upgrade_keeps_rows(url, start)
    finally:
        database.get_engine(url).dispose()  # lets the fixture drop the database


def test_previous_revision_is_the_one_before_head() -> None:
    script = ScriptDirectory.from_config(database.alembic_config("sqlite://"))
    head = script.get_revision(script.get_current_head())
    assert head is not None and head.down_revision == EARLIER[-1]


def test_upgrade_to_unknown_revision_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(database.DatabaseError, match=r"platform\.db.*9999"):
        database.upgrade(f"sqlite:///{tmp_path / 'platform.db'}", "9999")
