"""The platform database: Alembic creates the schema in place, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select

from mesops import database
from mesops.tables import IngestBatch


def _roundtrip(url: str) -> None:
    database.upgrade(url)
    database.upgrade(url)  # idempotent
    tables = set(inspect(database.get_engine(url)).get_table_names())
    assert {"ingest_batches", "table_loads", "attestations", "mesops_alembic_version"} <= tables
    with database.session_scope(url) as session:
        session.add(
            IngestBatch(
                batch_id="b1",
                source_kind="file",
                path="/x",
                manifest_sha256="0" * 64,
                registered_at=datetime.now(UTC),
            )
        )
    with database.session_scope(url) as session:
        assert session.scalars(select(IngestBatch.batch_id)).all() == ["b1"]


def test_sqlite_schema_created_and_rows_kept(settings) -> None:
    _roundtrip(settings.resolved_database_url)


@pytest.mark.postgres
def test_postgres_schema_created_and_rows_kept(postgres_database: str) -> None:
    _roundtrip(postgres_database)
    database.get_engine(postgres_database).dispose()


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(database.DatabaseError, match=r"127\.0\.0\.1:1/nowhere"):
        database.upgrade("postgresql+psycopg2://nobody@127.0.0.1:1/nowhere")


def test_upgrade_from_previous_schema_keeps_rows(settings) -> None:
    url = settings.resolved_database_url
    database.upgrade(url, "0001")
    assert "audit_log" not in inspect(database.get_engine(url)).get_table_names()
    with database.session_scope(url) as session:
        session.add(
            IngestBatch(
                batch_id="old",
                source_kind="plex",
                path="/p",
                manifest_sha256="1" * 64,
                registered_at=datetime.now(UTC),
            )
        )
    database.upgrade(url)
    assert "audit_log" in inspect(database.get_engine(url)).get_table_names()
    with database.session_scope(url) as session:
        assert session.scalars(select(IngestBatch.batch_id)).all() == ["old"]


def test_migrations_create_exactly_the_declared_tables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import mesops.monitoring_tables
    import mesops.rollout_tables
    import mesops.serving_tables  # noqa: F401  (registers the tables the migrations must create)
    from mesops.tables import Base

    url = f"sqlite:///{tmp_path / 'schema.db'}"
    database.upgrade(url)
    with database.get_engine(url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # the only table the models do not declare is the migrations' own version table
    assert [(d[0], d[1].name) for d in differences] == [("remove_table", "mesops_alembic_version")]
