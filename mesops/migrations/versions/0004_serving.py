"""serving

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mesops.serving_tables  # noqa: F401  (registers the serving tables on Base.metadata for autogenerate)

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("key_sha256"),
    )
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=120), nullable=False),
        sa.Column("correlation_id", sa.String(length=200), nullable=False),
        sa.Column("entity_id", sa.String(length=120), nullable=False),
        sa.Column("actual", sa.Float(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("posted_by", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.create_index("ix_outcomes_model_correlation", ["model_name", "correlation_id"], unique=True)

    op.create_table(
        "prediction_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.String(length=60), nullable=False),
        sa.Column("model_name", sa.String(length=120), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("entity_id", sa.String(length=120), nullable=False),
        sa.Column("correlation_id", sa.String(length=200), nullable=False),
        sa.Column("answered_by", sa.String(length=20), nullable=False),
        sa.Column("answered_version", sa.String(length=40), nullable=False),
        sa.Column("champion_version", sa.String(length=40), nullable=True),
        sa.Column("challenger_version", sa.String(length=40), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("champion_output", sa.JSON(), nullable=True),
        sa.Column("challenger_output", sa.JSON(), nullable=True),
        sa.Column("recommendation_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.create_index("ix_prediction_log_correlation", ["model_name", "correlation_id"], unique=False)
        batch_op.create_index("ix_prediction_log_model_time", ["model_name", "created_at"], unique=False)

    op.create_table(
        "recommendations",
        sa.Column("recommendation_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("model_name", sa.String(length=120), nullable=False),
        sa.Column("model_version", sa.String(length=40), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("entity_id", sa.String(length=120), nullable=False),
        sa.Column("line_id", sa.String(length=60), nullable=True),
        sa.Column("correlation_id", sa.String(length=200), nullable=False),
        sa.Column("action_class", sa.String(length=60), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("reason_code", sa.String(length=60), nullable=True),
        sa.Column("modified_value", sa.Float(), nullable=True),
        sa.Column("comment", sa.String(length=500), nullable=True),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("decided_role", sa.String(length=20), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("recommendation_id"),
    )
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recommendations_correlation_id"), ["correlation_id"], unique=False
        )
        batch_op.create_index("ix_recommendations_model_status", ["model_name", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_recommendations_request_id"), ["request_id"], unique=False)

    op.create_table(
        "rollout_states",
        sa.Column("model_name", sa.String(length=120), nullable=False),
        sa.Column("challenger_version", sa.String(length=40), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("model_name"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("rollout_states")
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recommendations_request_id"))
        batch_op.drop_index("ix_recommendations_model_status")
        batch_op.drop_index(batch_op.f("ix_recommendations_correlation_id"))

    op.drop_table("recommendations")
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_log_model_time")
        batch_op.drop_index("ix_prediction_log_correlation")

    op.drop_table("prediction_log")
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.drop_index("ix_outcomes_model_correlation")

    op.drop_table("outcomes")
    op.drop_table("api_keys")
