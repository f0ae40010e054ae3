"""The audit trail: an append-only, hash-chained log of every promotion, approval, gate decision and rollback.

Each entry carries the hash of the one before it and a hash of its own content, and a head row remembers the
newest entry. `verify` therefore finds an edited entry (its hash no longer matches its content), a deleted or
reordered one (the chain or the sequence breaks) and a deleted tail (the head points past the end), and names
the first bad entry. Concurrent writers are serialized by the unique sequence number: a writer that loses the
race retries on the new tail, so the chain stays linear on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mesops import database
from mesops.tables import AuditHead, AuditRecord

GENESIS_HASH = "0" * 64
HEAD_ID = 1
Role = Literal["system", "integration", "planner", "ml-engineer", "governance"]


class AuditEvent(BaseModel):
    """What happened, who or what did it, to which model version, why, and on which evidence."""

    model_config = ConfigDict(frozen=True)

    actor: str = Field(description="Who or what acted: a user, 'dagster:<run id>', 'gate:<policy>' …")
    actor_role: Role
    action: str = Field(description="e.g. register, promote, demote, rollback, approve, gate_evaluation.")
    model_name: str | None = None
    model_version: str | None = None
    alias: str | None = None
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict, description="Run ids, report paths, gate results.")


class AuditEntry(BaseModel):
    """An event as recorded: its place in the chain and the hashes that seal it."""

    model_config = ConfigDict(frozen=True)

    seq: int
    occurred_at: datetime
    event: AuditEvent
    prev_hash: str
    entry_hash: str


class Verification(BaseModel):
    """The outcome of checking the whole chain: how many entries, and the first bad one with why."""

    model_config = ConfigDict(frozen=True)

    entries: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None


class AuditConflictError(RuntimeError):
    """Appending kept losing the race for the next sequence number."""


def entry_hash(seq: int, occurred_at: datetime, event: AuditEvent, prev_hash: str) -> str:
    """sha256 of the entry's canonical JSON (sorted keys, UTC ISO time)."""
    body = {
        "seq": seq,
        "occurred_at": _utc(occurred_at).isoformat(),
        "prev_hash": prev_hash,
        **event.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def append_in(session: Session, event: AuditEvent, now: datetime | None = None) -> AuditEntry:
    """Append within the caller's transaction (so an alias move and its audit entry commit together)."""
    occurred_at = _utc(now or datetime.now(UTC))
    # Writers queue on the head row (locked until commit) instead of racing for the next number and retrying
    # after a pause: under concurrent planner decisions the retries were most of a decision's latency. SQLite
    # ignores FOR UPDATE (it serializes writers anyway); the very first entry still races, and retries, as before.
    head = session.get(AuditHead, HEAD_ID, with_for_update=True, populate_existing=True)
    last = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).first()
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS_HASH if last is None else last.entry_hash
    sealed = entry_hash(seq, occurred_at, event, prev)
    session.add(
        AuditRecord(
            seq=seq,
            occurred_at=occurred_at,
            prev_hash=prev,
            entry_hash=sealed,
            **event.model_dump(),
        )
    )
    if head is None:
        session.add(AuditHead(id=HEAD_ID, seq=seq, entry_hash=sealed))
    else:
        head.seq, head.entry_hash = seq, sealed
    session.flush()  # a racing writer with the same seq fails here (primary key), not silently later
    return AuditEntry(seq=seq, occurred_at=occurred_at, event=event, prev_hash=prev, entry_hash=sealed)


def append(url: str, event: AuditEvent, attempts: int = 20) -> AuditEntry:
    """Append one event in its own transaction, retrying when another writer took the next number."""
    for attempt in range(attempts):
        try:
            with database.session_scope(url) as session:
                return append_in(session, event)
        except IntegrityError:
            time.sleep(0.01 * (attempt + 1))
    raise AuditConflictError(f"could not append to the audit trail after {attempts} attempts (contention)")


def entries(url: str, model_name: str | None = None) -> Iterator[AuditEntry]:
    """The recorded entries in order, optionally only those about one model."""
    with database.session_scope(url) as session:
        query = select(AuditRecord).order_by(AuditRecord.seq)
        if model_name is not None:
            query = query.where(AuditRecord.model_name == model_name)
        records = list(session.scalars(query))
    for record in records:
        yield _entry(record)


def _entry(record: AuditRecord) -> AuditEntry:
    event = AuditEvent(
        actor=record.actor,
        actor_role=record.actor_role,  # type: ignore[arg-type]
        action=record.action,
        model_name=record.model_name,
        model_version=record.model_version,
        alias=record.alias,
        reason=record.reason,
        evidence=record.evidence,
    )
    return AuditEntry(
        seq=record.seq,
        occurred_at=_utc(record.occurred_at),
        event=event,
        prev_hash=record.prev_hash,
        entry_hash=record.entry_hash,
    )


def verify(url: str) -> Verification:
    """Check every entry's content hash, the chain of previous hashes, the sequence and the head."""
    with database.session_scope(url) as session:
        records = list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
        head = session.get(AuditHead, HEAD_ID)
        head_seq, head_hash = (head.seq, head.entry_hash) if head else (0, GENESIS_HASH)
    prev_hash, expected_seq = GENESIS_HASH, 1
    for record in records:
        entry = _entry(record)
        if record.seq != expected_seq:
            return _bad(
                len(records), expected_seq, f"entry {expected_seq} is missing (next found: {record.seq})"
            )
        if record.prev_hash != prev_hash:
            return _bad(
                len(records), record.seq, "does not follow the entry before it (deleted or reordered)"
            )
        if entry_hash(entry.seq, entry.occurred_at, entry.event, entry.prev_hash) != record.entry_hash:
            return _bad(len(records), record.seq, "its content does not match its hash (edited)")
        prev_hash, expected_seq = record.entry_hash, record.seq + 1
    if (head_seq, head_hash) != (expected_seq - 1, prev_hash):
        return _bad(
            len(records), expected_seq, f"the head names entry {head_seq}: entries at the end were deleted"
        )
    return Verification(entries=len(records), ok=True)


def _bad(count: int, seq: int, problem: str) -> Verification:
    return Verification(entries=count, ok=False, first_bad_seq=seq, problem=f"audit entry {seq}: {problem}")
