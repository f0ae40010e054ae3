"""API keys of the served API: create, list, revoke, and the snapshot of active keys the service checks against.

A key reads `mk_<key_id>_<secret>`: the key id (8 hex characters) is what people, logs and the audit trail
refer to; the secret is `secrets.token_urlsafe(32)` (256 random bits). Only sha256 of the whole key is stored.
A plain, unsalted sha256 is the right tool here, unlike for passwords: the secret is uniformly random with
256 bits of entropy, so there is no dictionary to precompute and nothing for a slow, salted hash (bcrypt,
argon2) to protect; and a fast hash keeps the check on every request to one dict lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from governance import audit
from mesops import database
from mesops.serving_tables import ApiKey

ServedRole = Literal["integration", "planner", "ml-engineer", "governance"]
SERVED_ROLES: tuple[str, ...] = get_args(ServedRole)
KEY_PREFIX = "mk"
LABEL_MAX_CHARS = 120  # the api_keys.label column
# A new key id collides with an existing one with probability n / 2**32; a retry draws a new key. The same
# retry covers another writer taking the audit trail's next sequence number in between.
_CREATE_ATTEMPTS = 5


class UnknownKeyError(LookupError):
    """No API key has this key id."""


class KeyInfo(BaseModel):
    """An API key as anyone may see it: id, role, label, when created and revoked (never the key or its hash)."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    role: ServedRole
    label: str
    created_at: datetime
    revoked_at: datetime | None = None


class CreatedKey(BaseModel):
    """A key just created, with its plaintext `key`: shown to the operator once, never stored or retrievable."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    role: ServedRole
    label: str
    created_at: datetime
    key: str = Field(repr=False, description="mk_<key_id>_<secret>; only its sha256 is kept.")


def hash_key(key: str) -> str:
    """The stored form of a key: sha256 of the whole key, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    db_url: str,
    role: str,
    label: str,
    *,
    actor: str = "cli",
    actor_role: audit.Role = "ml-engineer",
) -> CreatedKey:
    """Create a key for a served role; stores its sha256 and writes an audit entry in the same transaction."""
    _check_role(role)
    label = _checked_label(label)
    for _ in range(_CREATE_ATTEMPTS - 1):
        try:
            return _insert_new_key(db_url, role, label, actor, actor_role)
        except IntegrityError:
            continue
    return _insert_new_key(db_url, role, label, actor, actor_role)  # the last attempt's failure propagates


def _insert_new_key(db_url: str, role: str, label: str, actor: str, actor_role: audit.Role) -> CreatedKey:
    key_id = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    created_at = datetime.now(UTC)
    event = audit.AuditEvent(
        actor=actor,
        actor_role=actor_role,
        action="create_api_key",
        reason=f"API key {key_id} created for role {role}: {label}",
        evidence={"key_id": key_id, "role": role, "label": label},
    )
    with database.session_scope(db_url) as session:
        session.add(
            ApiKey(
                key_id=key_id,
                key_sha256=hash_key(key),
                role=role,
                label=label,
                created_at=created_at,
                revoked_at=None,
            )
        )
        session.flush()  # a key id collision fails here, before the audit entry is written
        audit.append_in(session, event, now=created_at)
    return CreatedKey(key_id=key_id, role=role, label=label, created_at=created_at, key=key)  # type: ignore[arg-type]


def list_keys(db_url: str) -> list[KeyInfo]:
    """Every key, revoked or not, oldest first."""
    with database.session_scope(db_url) as session:
        rows = list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id)))
        return [_info(row) for row in rows]


def revoke_key(
    db_url: str,
    key_id: str,
    *,
    actor: str = "cli",
    actor_role: audit.Role = "ml-engineer",
) -> KeyInfo:
    """Revoke a key (audited); revoking a revoked key changes nothing and returns it as it is."""
    if key_id.startswith(f"{KEY_PREFIX}_"):
        # Someone pasted the whole key: refuse without echoing it (it would end up in logs and shell history).
        raise ValueError("key_id: give the 8-hex key id (see `mesops keys list`), not the key itself")
    now = datetime.now(UTC)
    with database.session_scope(db_url) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise UnknownKeyError(f"API key {key_id!r}: no such key id (see `mesops keys list`)")
        # Conditional update: of two racing revocations exactly one changes the row and writes the audit entry.
        changed = session.execute(
            update(ApiKey)
            .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed:
            audit.append_in(
                session,
                audit.AuditEvent(
                    actor=actor,
                    actor_role=actor_role,
                    action="revoke_api_key",
                    reason=f"API key {key_id} (role {row.role}: {row.label}) revoked",
                    evidence={"key_id": key_id, "role": row.role, "label": row.label},
                ),
                now=now,
            )
        session.refresh(row)
        return _info(row)


def active_keys(db_url: str) -> dict[str, KeyInfo]:
    """The keys not revoked, by sha256: the snapshot the service caches and refreshes."""
    with database.session_scope(db_url) as session:
        rows = session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))
        return {row.key_sha256: _info(row) for row in rows}


def _check_role(role: str) -> None:
    if role not in SERVED_ROLES:
        raise ValueError(f"role {role!r}: must be one of {', '.join(SERVED_ROLES)}")


def _checked_label(label: str) -> str:
    label = label.strip()
    if not label or len(label) > LABEL_MAX_CHARS:
        raise ValueError(f"label: must be 1 to {LABEL_MAX_CHARS} characters (what the key is for)")
    return label


def _utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        key_id=row.key_id,
        role=row.role,  # type: ignore[arg-type]
        label=row.label,
        created_at=_utc(row.created_at),
        revoked_at=None if row.revoked_at is None else _utc(row.revoked_at),
    )
