"""Tables of the serving path: rollout phase per model, API keys, recommendations, prediction log, outcomes.

Nothing here holds personal data: entities are machine, order and meter ids (plant assets, not people), and
a decision is attributed to the API key (its id and role) that made it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mesops.tables import Base


class RolloutState(Base):
    """The rollout phase of one challenger version of a model (shadow, approval, autonomous).

    A challenger without a row (or whose row names another version) is in shadow: every new challenger starts
    there.
    """

    __tablename__ = "rollout_states"

    model_name: Mapped[str] = mapped_column(String(120), primary_key=True)
    challenger_version: Mapped[str] = mapped_column(String(40))
    phase: Mapped[str] = mapped_column(String(20))
    policy_version: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(120))


class ApiKey(Base):
    """An API key of the served API: only its sha256 is stored; the role says what it may do."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Recommendation(Base):
    """A recommendation made from one prediction, and the planner's decision on it."""

    __tablename__ = "recommendations"
    __table_args__ = (Index("ix_recommendations_model_status", "model_name", "status"),)

    recommendation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(40), index=True)
    model_name: Mapped[str] = mapped_column(String(120))
    model_version: Mapped[str] = mapped_column(String(40))
    phase: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str] = mapped_column(String(120))
    line_id: Mapped[str | None] = mapped_column(String(60))
    correlation_id: Mapped[str] = mapped_column(String(200), index=True)
    action_class: Mapped[str] = mapped_column(String(60))
    text: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision: Mapped[str | None] = mapped_column(String(20))
    reason_code: Mapped[str | None] = mapped_column(String(60))
    modified_value: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(String(500))
    decided_by: Mapped[str | None] = mapped_column(String(40))
    decided_role: Mapped[str | None] = mapped_column(String(20))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PredictionLogEntry(Base):
    """One served prediction: features after feature building, what champion and challenger said, timing."""

    __tablename__ = "prediction_log"
    __table_args__ = (
        Index("ix_prediction_log_model_time", "model_name", "created_at"),
        Index("ix_prediction_log_correlation", "model_name", "correlation_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    endpoint: Mapped[str] = mapped_column(String(60))
    model_name: Mapped[str] = mapped_column(String(120))
    phase: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str] = mapped_column(String(120))
    correlation_id: Mapped[str] = mapped_column(String(200))
    answered_by: Mapped[str] = mapped_column(String(20))
    answered_version: Mapped[str] = mapped_column(String(40))
    champion_version: Mapped[str | None] = mapped_column(String(40))
    challenger_version: Mapped[str | None] = mapped_column(String(40))
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    champion_output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    challenger_output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recommendation_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    latency_ms: Mapped[float] = mapped_column(Float)


class Outcome(Base):
    """What really happened (failure, good quantity, consumption), joined to predictions by correlation id."""

    __tablename__ = "outcomes"
    __table_args__ = (Index("ix_outcomes_model_correlation", "model_name", "correlation_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(120))
    correlation_id: Mapped[str] = mapped_column(String(200))
    entity_id: Mapped[str] = mapped_column(String(120))
    actual: Mapped[float] = mapped_column(Float)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    posted_by: Mapped[str] = mapped_column(String(40))
