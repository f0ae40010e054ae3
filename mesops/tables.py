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


class AuditRecord(Base):
    """One entry of the append-only, hash-chained audit trail (see governance/audit.py)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(60), index=True)
    model_name: Mapped[str | None] = mapped_column(String(120), index=True)
    model_version: Mapped[str | None] = mapped_column(String(40))
    alias: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(2000))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The newest entry of the audit trail, updated in the same transaction: deleting the tail shows too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    entry_hash: Mapped[str] = mapped_column(String(64))
