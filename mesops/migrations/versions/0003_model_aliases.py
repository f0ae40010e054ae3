"""model aliases

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mesops.rollout_tables  # noqa: F401  (registers ModelAlias on Base.metadata for autogenerate)

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "model_aliases",
        sa.Column("model_name", sa.String(length=120), nullable=False),
        sa.Column("alias", sa.String(length=40), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("previous_version", sa.String(length=40), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "alias"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("model_aliases")
