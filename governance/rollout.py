"""Rollout state: which versions answer for each model, and the phase of its challenger.

The serving path reads :func:`snapshot` (one query, every few seconds); people and gates change the phase with
:func:`set_phase`, audited in the same transaction. A challenger is in shadow until someone moves it: a phase
row is tied to the challenger version it was set for, so a new challenger never inherits an old phase.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from governance import audit
from governance.phase_policy import Phase, PhasePolicy
from governance.promotion import CHALLENGER, CHAMPION
from mesops import database
from mesops.rollout_tables import ModelAlias
from mesops.serving_tables import RolloutState

_AUDIT_ATTEMPTS = 20


class RolloutError(RuntimeError):
    """A phase change that cannot be made: which model, and why."""


class RolloutView(BaseModel):
    """Who answers for one model right now."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    champion: str | None
    challenger: str | None
    phase: Phase | None  # None when there is no challenger


def snapshot(db_url: str) -> dict[str, RolloutView]:
    """Champion, challenger and phase of every model with an alias, from the platform database."""
    with database.session_scope(db_url) as session:
        alias_rows = session.execute(
            select(ModelAlias.model_name, ModelAlias.alias, ModelAlias.version)
        ).all()
        phase_rows = {row.model_name: row for row in session.scalars(select(RolloutState))}
    by_model: dict[str, dict[str, str]] = {}
    for name, alias, version in alias_rows:
        by_model.setdefault(name, {})[alias] = version
    views = {}
    for name, found in by_model.items():
        challenger = found.get(CHALLENGER)
        row = phase_rows.get(name)
        phase = None
        if challenger is not None:
            same = row is not None and row.challenger_version == challenger
            phase = Phase(row.phase) if same and row is not None else Phase.SHADOW
        views[name] = RolloutView(
            model_name=name, champion=found.get(CHAMPION), challenger=challenger, phase=phase
        )
    return views


def view(db_url: str, model_name: str) -> RolloutView:
    """The rollout of one model (no aliases: neither champion nor challenger)."""
    return snapshot(db_url).get(
        model_name, RolloutView(model_name=model_name, champion=None, challenger=None, phase=None)
    )


def set_phase(
    db_url: str,
    model_name: str,
    phase: Phase,
    policy: PhasePolicy,
    *,
    actor: str,
    actor_role: audit.Role,
    reason: str,
    evidence: dict[str, Any] | None = None,
) -> audit.AuditEntry:
    """Put the model's current challenger in ``phase``; audited with the policy's version and hash.

    ``evidence`` (e.g. the gate evaluation that decided it) is added to the audit entry's evidence.
    """
    if policy.model != model_name:
        raise RolloutError(f"policy {policy.ref} is not the policy of {model_name}")
    for attempt in range(_AUDIT_ATTEMPTS):
        try:
            return _set_phase_once(
                db_url, model_name, phase, policy, actor, actor_role, reason, evidence or {}
            )
        except (IntegrityError, OperationalError):
            # the audit sequence number was taken by a concurrent writer: try the whole change again
            time.sleep(0.01 * (attempt + 1))
    raise RolloutError(f"{model_name}: could not record the phase change (audit trail busy)")


def _set_phase_once(
    db_url: str,
    model_name: str,
    phase: Phase,
    policy: PhasePolicy,
    actor: str,
    actor_role: audit.Role,
    reason: str,
    extra_evidence: dict[str, Any],
) -> audit.AuditEntry:
    with database.session_scope(db_url) as session:
        challenger = session.get(ModelAlias, (model_name, CHALLENGER))
        if challenger is None:
            raise RolloutError(f"{model_name} has no challenger: promote a version to 'challenger' first")
        row = session.get(RolloutState, model_name)
        before = row.phase if row is not None and row.challenger_version == challenger.version else "shadow"
        now = datetime.now(UTC)
        if row is None:
            row = RolloutState(model_name=model_name)
            session.add(row)
        row.challenger_version = challenger.version
        row.phase = phase.value
        row.policy_version = policy.version
        row.updated_at = now
        row.updated_by = actor
        event = audit.AuditEvent(
            actor=actor,
            actor_role=actor_role,
            action="set_phase",
            model_name=model_name,
            model_version=challenger.version,
            alias=CHALLENGER,
            reason=reason,
            evidence={
                "from_phase": before,
                "to_phase": phase.value,
                "policy": policy.ref,
                "policy_sha256": policy.sha256,
            }
            | extra_evidence,
        )
        session.flush()
        return audit.append_in(session, event, now)
