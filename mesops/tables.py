"""Tables of the platform database (SQLite by default, PostgreSQL in production). Schema changes go through Alembic."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every platform table."""


class IngestBatch(Base):
    """A complete batch of MES extracts found in the landing zone."""

    __tablename__ = "ingest_batches"

    batch_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_kind: Mapped[str] = mapped_column(String(20))
    path: Mapped[str] = mapped_column(String(1000))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TableLoad(Base):
    """One table of one batch through the data path: how many rows landed, passed and were quarantined, why."""

    __tablename__ = "table_loads"
    __table_args__ = (UniqueConstraint("batch_id", "table_name", "run_id", name="uq_table_load_run"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(200), index=True)
    table_name: Mapped[str] = mapped_column(String(100), index=True)
    contract_ref: Mapped[str] = mapped_column(String(120))
    landed: Mapped[int] = mapped_column(Integer)
    valid: Mapped[int] = mapped_column(Integer)
    quarantined: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[dict[str, Any]] = mapped_column(JSON)
    attestation_id: Mapped[str | None] = mapped_column(String(80))
    curated_sha256: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AttestationRecord(Base):
    """An anonymization attestation: what was replaced in one table of one batch, under which policy."""

    __tablename__ = "attestations"

    attestation_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(200), index=True)
    table_name: Mapped[str] = mapped_column(String(100))
    contract_ref: Mapped[str] = mapped_column(String(120))
    policy_version: Mapped[str] = mapped_column(String(40))
    content_sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
