"""Promotion, rollback and demotion: the one place that moves model aliases.

The platform database is the source of truth: a `model_aliases` row per (model, alias) is changed by
compare-and-swap in the same transaction as its audit entry, so two racing promotions leave one winner and a
consistent trail (the loser gets PromotionConflictError), on SQLite and on PostgreSQL. MLflow's alias is a
mirror set after the commit; `sync_alias` makes it match the row again if a mirror call ever failed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance import audit
from governance.registry import Registry, UnknownVersionError
from mesops import database
from mesops.rollout_tables import ModelAlias

CHAMPION = "champion"
CHALLENGER = "challenger"
# Retries only when the audit trail's next sequence number was taken by an unrelated writer; the alias
# compare-and-swap is re-checked on every attempt, so a retry never overrides another promotion.
_AUDIT_ATTEMPTS = 20
_MIRROR_ATTEMPTS = 10
_UNSET: Any = object()


class PromotionError(RuntimeError):
    """Base of the errors promotion, rollback and demotion raise."""


class PromotionRefusedError(PromotionError):
    """A precondition failed; `precondition` names it and `details` lists what was missing or measured."""

    def __init__(self, precondition: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"promotion refused: {precondition}: {message}")
        self.precondition = precondition
        self.details = details or {}


class PromotionConflictError(PromotionError):
    """The alias moved while this change was being made (another promotion won the race)."""


class PromotionDecision(BaseModel):
    """What an alias change did: which alias of which model moved from where to where, and its audit entry."""

    model_config = ConfigDict(frozen=True)

    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    audit_seq: int


def current_version(db_url: str, model_name: str, alias: str = CHAMPION) -> str | None:
    """The version an alias points at, from the platform database (the source of truth)."""
    with database.session_scope(db_url) as session:
        row = session.get(ModelAlias, (model_name, alias))
        return None if row is None else row.version


def promote(
    registry: Registry,
    db_url: str,
    model_name: str,
    version: str,
    *,
    alias: str = CHAMPION,
    actor: str,
    actor_role: audit.Role,
    reason: str,
    expected_current: str | None = _UNSET,
) -> PromotionDecision:
    """Point `alias` at `version` if it exists, its lineage is complete and it beats its baseline; audited.

    `expected_current` is the version the decision was made against (None: the alias was unset); when given,
    the promotion fails with PromotionConflictError if the alias points elsewhere. By default it is read now.
    """
    version = str(version)
    event = audit.AuditEvent(
        actor=actor,
        actor_role=actor_role,
        action="promote",
        model_name=model_name,
        model_version=version,
        alias=alias,
        reason=reason,
    )
    evidence = _check_preconditions(registry, db_url, event)
    expected = current_version(db_url, model_name, alias) if expected_current is _UNSET else expected_current
    if expected == version:
        raise PromotionRefusedError(
            "not_current", f"{model_name}@{alias} already points at version {version}"
        )
    event = event.model_copy(update={"evidence": evidence | {"from_version": expected}})
    entry = _swap(db_url, model_name, alias, expected, version, previous=expected, event=event)
    _mirror(registry, db_url, model_name, alias)
    return PromotionDecision(
        model=model_name, alias=alias, from_version=expected, to_version=version, audit_seq=entry.seq
    )


def rollback(
    registry: Registry,
    db_url: str,
    model_name: str,
    *,
    alias: str = CHAMPION,
    actor: str,
    actor_role: audit.Role,
    reason: str,
) -> PromotionDecision:
    """Point `alias` back at the version it had before the last promotion; audited.

    The rolled-back version is not remembered as "previous": a second rollback is refused rather than
    bouncing back onto the version that was just withdrawn (promote it again explicitly if wanted).
    """
    with database.session_scope(db_url) as session:
        row = session.get(ModelAlias, (model_name, alias))
        current, previous = (None, None) if row is None else (row.version, row.previous_version)
    if current is None or previous is None:
        raise PromotionRefusedError(
            "previous_version", f"{model_name}@{alias} has no previous version to roll back to"
        )
    try:
        run_id = registry.version(model_name, previous).run_id
    except UnknownVersionError as err:
        raise PromotionRefusedError("version_exists", str(err)) from err
    event = audit.AuditEvent(
        actor=actor,
        actor_role=actor_role,
        action="rollback",
        model_name=model_name,
        model_version=previous,
        alias=alias,
        reason=reason,
        evidence={"from_version": current, "run_id": run_id},
    )
    entry = _swap(db_url, model_name, alias, current, previous, previous=None, event=event)
    _mirror(registry, db_url, model_name, alias)
    return PromotionDecision(
        model=model_name, alias=alias, from_version=current, to_version=previous, audit_seq=entry.seq
    )


def demote(
    registry: Registry,
    db_url: str,
    model_name: str,
    *,
    alias: str = CHALLENGER,
    actor: str,
    actor_role: audit.Role,
    reason: str,
) -> PromotionDecision:
    """Remove an alias (by default the challenger) from whatever version it points at; audited."""
    current = current_version(db_url, model_name, alias)
    if current is None:
        raise PromotionRefusedError("alias_set", f"{model_name}@{alias} is not set: nothing to demote")
    event = audit.AuditEvent(
        actor=actor,
        actor_role=actor_role,
        action="demote",
        model_name=model_name,
        model_version=current,
        alias=alias,
        reason=reason,
        evidence={"from_version": current},
    )
    entry = _swap(db_url, model_name, alias, current, None, previous=None, event=event)
    _mirror(registry, db_url, model_name, alias)
    return PromotionDecision(
        model=model_name, alias=alias, from_version=current, to_version=None, audit_seq=entry.seq
    )


def sync_alias(registry: Registry, db_url: str, model_name: str, alias: str = CHAMPION) -> str | None:
    """Make MLflow's alias match the platform database (repair after a failed mirror); returns the version."""
    return _mirror(registry, db_url, model_name, alias)


def aliases(db_url: str, model_name: str) -> dict[str, str]:
    """Every alias of a model in the platform database, alias → version."""
    with database.session_scope(db_url) as session:
        found = session.scalars(select(ModelAlias).where(ModelAlias.model_name == model_name))
        return {row.alias: row.version for row in found}


# --- preconditions ------------------------------------------------------------------------------------
def _check_preconditions(registry: Registry, db_url: str, event: audit.AuditEvent) -> dict[str, Any]:
    """The evidence of a promotable version, or PromotionRefusedError (recorded as 'promotion_refused')."""
    name, version = str(event.model_name), str(event.model_version)
    try:
        try:
            info = registry.version(name, version)
        except UnknownVersionError as err:
            raise PromotionRefusedError("version_exists", str(err), {"version": version}) from err
        lineage = registry.lineage(name, version)
        missing = lineage.missing_fields()
        if missing:
            raise PromotionRefusedError(
                "lineage_complete",
                f"lineage of {name} v{version} lacks: {', '.join(missing)}",
                {"missing": missing},
            )
        if not lineage.beats_baseline:
            raise PromotionRefusedError(
                "beats_baseline",
                f"{name} v{version} does not beat its baseline ({_baseline_text(lineage.baseline)})",
                {"baseline": lineage.baseline},
            )
    except PromotionRefusedError as refusal:
        audit.append(
            db_url,
            event.model_copy(
                update={
                    "action": "promotion_refused",
                    "evidence": {"precondition": refusal.precondition, **refusal.details},
                }
            ),
        )
        raise
    return {"run_id": info.run_id, "baseline": lineage.baseline, "lineage": lineage.as_tags()}


def _baseline_text(baseline: dict[str, Any]) -> str:
    if not baseline:
        return "no baseline comparison recorded"
    return (
        f"{baseline.get('metric')}: model {baseline.get('model_value')} vs "
        f"{baseline.get('baseline_name')} {baseline.get('baseline_value')}"
    )


# --- the compare-and-swap -----------------------------------------------------------------------------
def _swap(
    db_url: str,
    model_name: str,
    alias: str,
    expected: str | None,
    target: str | None,
    *,
    previous: str | None,
    event: audit.AuditEvent,
) -> audit.AuditEntry:
    """Move the alias row from `expected` to `target` (None: delete it) and append the audit entry, atomically."""
    for attempt in range(_AUDIT_ATTEMPTS):
        try:
            with database.session_scope(db_url) as session:
                _compare_and_swap(session, model_name, alias, expected, target, previous)
                try:
                    return audit.append_in(session, event)
                except IntegrityError as err:
                    raise _AuditRace from err
        except _AuditRace:
            time.sleep(0.01 * (attempt + 1))
    raise PromotionConflictError(
        f"could not record the change of {model_name}@{alias} in the audit trail after "
        f"{_AUDIT_ATTEMPTS} attempts (contention)"
    )


class _AuditRace(Exception):
    """Another writer took the audit trail's next sequence number: retry the whole transaction."""


def _compare_and_swap(
    session: Session,
    model_name: str,
    alias: str,
    expected: str | None,
    target: str | None,
    previous: str | None,
) -> None:
    # The alias statement runs first in the transaction: on SQLite it takes the write lock before anything is
    # read, on PostgreSQL it locks the row; a racing writer then waits and sees the committed state.
    key = (ModelAlias.model_name == model_name) & (ModelAlias.alias == alias)
    now = datetime.now(UTC)
    conflict = PromotionConflictError(
        f"{model_name}@{alias} no longer points at {expected!r}: another change won; re-read and retry"
    )
    if expected is None:
        # No savepoint: a duplicate key means another promotion created the row first, and this whole
        # transaction is abandoned anyway.
        try:
            session.execute(
                insert(ModelAlias).values(
                    model_name=model_name, alias=alias, version=target, previous_version=None, updated_at=now
                )
            )
        except IntegrityError as err:
            raise conflict from err
        return
    if target is None:
        moved = session.execute(delete(ModelAlias).where(key & (ModelAlias.version == expected)))
    else:
        moved = session.execute(
            update(ModelAlias)
            .where(key & (ModelAlias.version == expected))
            .values(version=target, previous_version=previous, updated_at=now)
        )
    if moved.rowcount != 1:
        raise conflict


def _mirror(registry: Registry, db_url: str, model_name: str, alias: str) -> str | None:
    """Set MLflow's alias to the row's version, and re-read until the row did not move meanwhile."""
    for _ in range(_MIRROR_ATTEMPTS):
        wanted = current_version(db_url, model_name, alias)
        if wanted is None:
            registry.delete_alias(model_name, alias)
        else:
            registry.set_alias(model_name, alias, wanted)
        # A later change's own mirror runs after its commit; if the row still holds what was just written,
        # any later writer will overwrite MLflow after us, so the last write always matches the database.
        if current_version(db_url, model_name, alias) == wanted:
            return wanted
    raise PromotionConflictError(
        f"{model_name}@{alias} kept moving while mirroring it to MLflow; run sync_alias to repair"
    )
