"""Alembic environment: runs migrations on the connection mesops.database passes in (or the configured URL)."""

from alembic import context
from sqlalchemy import create_engine

# imported for their side effect: they register the monitoring, rollout and serving tables on Base.metadata
import mesops.monitoring_tables
import mesops.rollout_tables
import mesops.serving_tables  # noqa: F401
from mesops.tables import Base

target_metadata = Base.metadata
# Our own version table, so the platform schema can share a PostgreSQL database with Dagster's (which has
# its own alembic_version).
VERSION_TABLE = "mesops_alembic_version"


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            version_table=VERSION_TABLE,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=True,
            version_table=VERSION_TABLE,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
