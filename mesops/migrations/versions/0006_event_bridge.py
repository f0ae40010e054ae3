"""event bridge: processed events and dead letters

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mesops.bridge_tables  # noqa: F401  (registers the bridge tables on Base.metadata for autogenerate)

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "bridge_events",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("request_ids", sa.JSON(), nullable=False),
        sa.Column("writebacks", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "bridge_dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transport", sa.String(length=10), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=True),
        sa.Column("event_type", sa.String(length=60), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("body_bytes", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bridge_dead_letters", schema=None) as batch_op:
        batch_op.create_index("ix_bridge_dead_letters_time", ["received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_bridge_dead_letters_event_id"), ["event_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("bridge_dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bridge_dead_letters_event_id"))
        batch_op.drop_index("ix_bridge_dead_letters_time")
    op.drop_table("bridge_dead_letters")
    op.drop_table("bridge_events")
