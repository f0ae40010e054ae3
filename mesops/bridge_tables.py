"""Tables of the MES event bridge: the ledger of processed events (idempotency) and the dead letters.

No personal data: an event is stored by its id, type and the ids of what it produced; a dead letter by its
reasons and a hash of the body (the body itself stays in the dead-letter queue, like a landing zone).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mesops.tables import Base


class ProcessedEvent(Base):
    """One MES event the bridge processed: what it produced and whether its write-backs were published."""

    __tablename__ = "bridge_events"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    event_type: Mapped[str] = mapped_column(String(60))
    schema_version: Mapped[int] = mapped_column(Integer)
    request_ids: Mapped[list[str]] = mapped_column(JSON)
    writebacks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeadLetter(Base):
    """An event the bridge could not process, with its reasons (field and rule, or the transient failure)."""

    __tablename__ = "bridge_dead_letters"
    __table_args__ = (Index("ix_bridge_dead_letters_time", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transport: Mapped[str] = mapped_column(String(10))
    event_id: Mapped[str | None] = mapped_column(String(200), index=True)
    source: Mapped[str | None] = mapped_column(String(20))
    event_type: Mapped[str | None] = mapped_column(String(60))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer)
    body_sha256: Mapped[str] = mapped_column(String(64))
    body_bytes: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
