"""Planner feedback and outcomes: deciding recommendations, recording what really happened, joining the two.

A recommendation is decided once. The decision is a compare-and-swap on the row's status in the same transaction
as its audit entry, so two planners racing on one recommendation leave one winner and one audit entry; the
loser re-reads and gets either an idempotent repeat (same decision) or RecommendationConflictError. Outcomes are
idempotent on (model, correlation id): an integration may post the same outcome again safely, a different value
for the same correlation id is refused. Rows are written by the prediction log writer; nothing here edits a
prediction (feedback is new data, not an edit).
"""

from __future__ import annotations

import math
import numbers
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance import audit
from mesops import database
from mesops.serving_tables import Outcome, PredictionLogEntry, Recommendation

# Retries when the audit trail's next sequence number was taken by an unrelated writer (as in promotion);
# the status compare-and-swap is re-checked on every attempt, so a retry never overrides another decision.
_AUDIT_ATTEMPTS = 20
DECIDER_ROLE = "planner"
# Column widths of mesops/serving_tables.py: refused with a named field rather than truncated or a DataError.
_KEY_ID_MAX = 40
_COMMENT_MAX = 500
_MODEL_NAME_MAX = 120
_CORRELATION_MAX = 200
_ENTITY_MAX = 120


class RecommendationStatus(StrEnum):
    """Where a recommendation stands: waiting (OPEN, PENDING_APPROVAL), applied, or decided by a planner."""

    OPEN = "OPEN"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    AUTO_APPLIED = "AUTO_APPLIED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    MODIFIED = "MODIFIED"


class Decision(StrEnum):
    """What a planner does with a recommendation."""

    ACCEPT = "accept"
    REJECT = "reject"
    MODIFY = "modify"


class ReasonCode(StrEnum):
    """The closed set of reasons a planner gives; ALLOWED_REASONS says which fit which decision."""

    AGREED = "agreed"
    ALREADY_PLANNED = "already_planned"
    WRONG_PREDICTION = "wrong_prediction"
    NOT_FEASIBLE = "not_feasible"
    ALREADY_HANDLED = "already_handled"
    ADJUSTED_QUANTITY = "adjusted_quantity"
    ADJUSTED_TIMING = "adjusted_timing"
    OTHER = "other"


DECIDABLE = frozenset(
    {RecommendationStatus.OPEN, RecommendationStatus.PENDING_APPROVAL, RecommendationStatus.AUTO_APPLIED}
)
RESULTING_STATUS: dict[Decision, RecommendationStatus] = {
    Decision.ACCEPT: RecommendationStatus.ACCEPTED,
    Decision.REJECT: RecommendationStatus.REJECTED,
    Decision.MODIFY: RecommendationStatus.MODIFIED,
}
ALLOWED_REASONS: dict[Decision, tuple[ReasonCode, ...]] = {
    Decision.ACCEPT: (ReasonCode.AGREED, ReasonCode.ALREADY_PLANNED),
    Decision.REJECT: (
        ReasonCode.WRONG_PREDICTION,
        ReasonCode.NOT_FEASIBLE,
        ReasonCode.ALREADY_HANDLED,
        ReasonCode.OTHER,
    ),
    Decision.MODIFY: (ReasonCode.ADJUSTED_QUANTITY, ReasonCode.ADJUSTED_TIMING, ReasonCode.OTHER),
}


# --- errors -------------------------------------------------------------------------------------------
OUTCOME_EARLIEST, OUTCOME_LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


class RecommendationNotFoundError(LookupError):
    """No recommendation has this id."""


class RecommendationConflictError(RuntimeError):
    """The recommendation was already decided differently (or kept changing while deciding)."""


class DecisionRuleError(ValueError):
    """A decision breaks a rule: the message names the field and the rule."""


class DecisionRoleError(PermissionError):
    """The caller's role may not decide recommendations."""


class RecommendationQueryError(ValueError):
    """A listing was asked with an invalid filter or limit."""


class OutcomeRuleError(ValueError):
    """An outcome breaks a rule: the message names the field and the rule."""


class OutcomeConflictError(RuntimeError):
    """An outcome for this (model, correlation id) was already recorded with a different value."""


# --- views --------------------------------------------------------------------------------------------
class RecommendationView(BaseModel):
    """A recommendation as clients see it: what was recommended, and the planner's decision if any."""

    model_config = ConfigDict(frozen=True)

    recommendation_id: str
    model_name: str
    model_version: str
    phase: str
    entity_id: str
    line_id: str | None
    correlation_id: str
    action_class: str
    text: str
    details: dict[str, Any]
    status: RecommendationStatus
    created_at: datetime
    decision: Decision | None
    reason_code: ReasonCode | None
    modified_value: float | None
    comment: str | None
    decided_by: str | None
    decided_role: str | None
    decided_at: datetime | None

    @classmethod
    def from_row(cls, row: Recommendation) -> RecommendationView:
        """The view of a database row (times in UTC)."""
        return cls(
            recommendation_id=row.recommendation_id,
            model_name=row.model_name,
            model_version=row.model_version,
            phase=row.phase,
            entity_id=row.entity_id,
            line_id=row.line_id,
            correlation_id=row.correlation_id,
            action_class=row.action_class,
            text=row.text,
            details=row.details,
            status=RecommendationStatus(row.status),
            created_at=_utc(row.created_at),
            decision=row.decision,
            reason_code=row.reason_code,
            modified_value=row.modified_value,
            comment=row.comment,
            decided_by=row.decided_by,
            decided_role=row.decided_role,
            decided_at=None if row.decided_at is None else _utc(row.decided_at),
        )


class OutcomeView(BaseModel):
    """What really happened for one correlation id of one model, and which key posted it when."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    correlation_id: str
    entity_id: str
    actual: float
    observed_at: datetime
    received_at: datetime
    posted_by: str

    @classmethod
    def from_row(cls, row: Outcome) -> OutcomeView:
        """The view of a database row (times in UTC)."""
        return cls(
            model_name=row.model_name,
            correlation_id=row.correlation_id,
            entity_id=row.entity_id,
            actual=row.actual,
            observed_at=_utc(row.observed_at),
            received_at=_utc(row.received_at),
            posted_by=row.posted_by,
        )


def _utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- deciding -----------------------------------------------------------------------------------------
def decide(
    db_url: str,
    recommendation_id: str,
    decision: Decision | str,
    reason_code: ReasonCode | str,
    *,
    modified_value: float | None = None,
    comment: str | None = None,
    key_id: str,
    role: str,
) -> tuple[RecommendationView, bool]:
    """Record a planner's decision, audited; the bool is False when it repeats the decision already stored.

    Raises DecisionRoleError (role is not planner), DecisionRuleError (decision, reason code, modified value,
    comment or key id break a rule), RecommendationNotFoundError, RecommendationConflictError (already decided
    otherwise).
    """
    if role != DECIDER_ROLE:
        raise DecisionRoleError(
            f"role: deciding a recommendation needs role {DECIDER_ROLE!r}; key {key_id!r} has role {role!r}"
        )
    chosen, reason = _checked_decision(decision, reason_code, modified_value)
    _check_text("key_id", key_id, _KEY_ID_MAX, DecisionRuleError)
    if comment is not None and len(comment) > _COMMENT_MAX:
        raise DecisionRuleError(f"comment: at most {_COMMENT_MAX} characters, got {len(comment)}")
    for attempt in range(_AUDIT_ATTEMPTS):
        current = get(db_url, recommendation_id)
        if current.status not in DECIDABLE:
            return _repeat_or_conflict(current, chosen, reason, modified_value), False
        try:
            with database.session_scope(db_url) as session:
                view = _swap(session, current, chosen, reason, modified_value, comment, key_id)
                try:
                    audit.append_in(
                        session, _decision_event(current, chosen, reason, modified_value, comment, key_id)
                    )
                except IntegrityError as err:
                    raise _AuditRace from err
            return view, True
        except _StatusMoved:
            continue  # someone else changed the status first: re-read and apply the idempotency rule
        except _AuditRace:
            time.sleep(0.01 * (attempt + 1))
    raise RecommendationConflictError(
        f"could not record the decision on recommendation {recommendation_id!r} after {_AUDIT_ATTEMPTS} "
        "attempts (contention on the audit trail or the recommendation kept changing)"
    )


class _AuditRace(Exception):
    """Another writer took the audit trail's next sequence number: retry the whole transaction."""


class _StatusMoved(Exception):
    """The status changed between reading and the compare-and-swap."""


def _checked_decision(
    decision: Decision | str, reason_code: ReasonCode | str, modified_value: float | None
) -> tuple[Decision, ReasonCode]:
    try:
        chosen = Decision(decision)
    except ValueError:
        allowed = ", ".join(d.value for d in Decision)
        raise DecisionRuleError(f"decision: must be one of {allowed}, got {decision!r}") from None
    if not reason_code:
        raise DecisionRuleError("reason_code: must not be empty")
    allowed_reasons = ALLOWED_REASONS[chosen]
    if reason_code not in {r.value for r in allowed_reasons}:
        raise DecisionRuleError(
            f"reason_code: {reason_code!r} is not allowed for {chosen.value}; allowed: "
            + ", ".join(r.value for r in allowed_reasons)
        )
    if chosen is Decision.MODIFY:
        if modified_value is None:
            raise DecisionRuleError("modified_value: required when the decision is modify")
        if not math.isfinite(modified_value):
            raise DecisionRuleError(f"modified_value: must be a finite number, got {modified_value!r}")
    elif modified_value is not None:
        raise DecisionRuleError(f"modified_value: only allowed with modify, not with {chosen.value}")
    return chosen, ReasonCode(reason_code)


def _check_text(field: str, value: str, max_len: int, error: type[ValueError]) -> None:
    if not value or len(value) > max_len:
        raise error(f"{field}: must be 1 to {max_len} characters, got {len(value or '')}")


def _swap(
    session: Session,
    current: RecommendationView,
    decision: Decision,
    reason: ReasonCode,
    modified_value: float | None,
    comment: str | None,
    key_id: str,
) -> RecommendationView:
    # The update runs first in the transaction: on SQLite it takes the write lock before anything is read, on
    # PostgreSQL it locks the row and a racing decider re-evaluates the WHERE on the committed row. Comparing
    # with the status read (not just "any decidable status") keeps previous_status in the audit entry true.
    moved = session.execute(
        update(Recommendation)
        .where(
            (Recommendation.recommendation_id == current.recommendation_id)
            & (Recommendation.status == current.status.value)
        )
        .values(
            status=RESULTING_STATUS[decision].value,
            decision=decision.value,
            reason_code=reason.value,
            modified_value=modified_value,
            comment=comment,
            decided_by=key_id,
            decided_role=DECIDER_ROLE,
            decided_at=datetime.now(UTC),
        )
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        raise _StatusMoved
    row = session.scalars(
        select(Recommendation)
        .where(Recommendation.recommendation_id == current.recommendation_id)
        .execution_options(populate_existing=True)
    ).one()
    return RecommendationView.from_row(row)


def _decision_event(
    current: RecommendationView,
    decision: Decision,
    reason: ReasonCode,
    modified_value: float | None,
    comment: str | None,
    key_id: str,
) -> audit.AuditEvent:
    return audit.AuditEvent(
        actor=f"key:{key_id}",
        actor_role=DECIDER_ROLE,
        action=f"recommendation.{decision.value}",
        model_name=current.model_name,
        model_version=current.model_version,
        reason=reason.value if not comment else f"{reason.value}: {comment}",
        evidence={
            "recommendation_id": current.recommendation_id,
            "previous_status": current.status.value,
            "modified_value": modified_value,
        },
    )


def _repeat_or_conflict(
    current: RecommendationView, decision: Decision, reason: ReasonCode, modified_value: float | None
) -> RecommendationView:
    """The stored row when it already holds this very decision; otherwise RecommendationConflictError."""
    stored = (current.decision, current.reason_code, current.modified_value)
    if stored == (decision, reason, modified_value):
        return current
    asked = f"{decision.value} ({reason.value}" + (
        f", modified_value {modified_value})" if modified_value is not None else ")"
    )
    held = (
        f"decision {current.decision.value} ({current.reason_code}"
        + (f", modified_value {current.modified_value})" if current.modified_value is not None else ")")
        if current.decision is not None
        else "no decision"
    )
    raise RecommendationConflictError(
        f"recommendation {current.recommendation_id!r} is {current.status.value} with {held}; cannot {asked}"
    )


# --- reading ------------------------------------------------------------------------------------------
def get(db_url: str, recommendation_id: str) -> RecommendationView:
    """One recommendation, or RecommendationNotFoundError."""
    with database.session_scope(db_url) as session:
        row = session.get(Recommendation, recommendation_id)
        if row is None:
            raise RecommendationNotFoundError(f"recommendation_id: no recommendation {recommendation_id!r}")
        return RecommendationView.from_row(row)


def list_recommendations(
    db_url: str,
    *,
    model_name: str | None = None,
    status: RecommendationStatus | str | None = None,
    limit: int = 100,
) -> list[RecommendationView]:
    """Recommendations newest first, optionally of one model and/or one status."""
    if limit < 1:
        raise RecommendationQueryError(f"limit: must be at least 1, got {limit}")
    query = select(Recommendation)
    if model_name is not None:
        query = query.where(Recommendation.model_name == model_name)
    if status is not None:
        try:
            wanted = RecommendationStatus(status)
        except ValueError:
            allowed = ", ".join(s.value for s in RecommendationStatus)
            raise RecommendationQueryError(f"status: must be one of {allowed}, got {status!r}") from None
        query = query.where(Recommendation.status == wanted.value)
    query = query.order_by(Recommendation.created_at.desc(), Recommendation.recommendation_id.desc())
    with database.session_scope(db_url) as session:
        return [RecommendationView.from_row(row) for row in session.scalars(query.limit(limit))]


def pending_count(db_url: str) -> dict[str, int]:
    """How many recommendations wait for approval, per model name (models with none are absent)."""
    query = (
        select(Recommendation.model_name, func.count())
        .where(Recommendation.status == RecommendationStatus.PENDING_APPROVAL.value)
        .group_by(Recommendation.model_name)
    )
    with database.session_scope(db_url) as session:
        return {name: int(count) for name, count in session.execute(query)}


# --- outcomes -----------------------------------------------------------------------------------------
def record_outcome(
    db_url: str,
    *,
    model_name: str,
    correlation_id: str,
    entity_id: str,
    actual: float,
    observed_at: datetime,
    key_id: str,
) -> tuple[OutcomeView, bool]:
    """Record what really happened; the bool is False when the same outcome was already recorded.

    Raises OutcomeRuleError (a field breaks a rule) and OutcomeConflictError (this correlation id already has
    a different actual value or entity).
    """
    _check_text("model_name", model_name, _MODEL_NAME_MAX, OutcomeRuleError)
    _check_text("correlation_id", correlation_id, _CORRELATION_MAX, OutcomeRuleError)
    _check_text("entity_id", entity_id, _ENTITY_MAX, OutcomeRuleError)
    _check_text("key_id", key_id, _KEY_ID_MAX, OutcomeRuleError)
    if not isinstance(actual, numbers.Real) or not math.isfinite(actual):
        raise OutcomeRuleError(f"actual: must be a finite number, got {actual!r}")
    if observed_at.tzinfo is None or observed_at.utcoffset() is None:
        raise OutcomeRuleError("observed_at: must carry a time zone (naive datetimes are ambiguous)")
    if not OUTCOME_EARLIEST <= observed_at < OUTCOME_LATEST:
        # far dates are typos, and they would break every later read of the outcomes as pandas times
        raise OutcomeRuleError("observed_at: must lie between 2000-01-01 and 2100-01-01 UTC")
    existing = _find_outcome(db_url, model_name, correlation_id)
    if existing is not None:
        return _same_outcome(existing, entity_id, float(actual)), False
    try:
        with database.session_scope(db_url) as session:
            row = Outcome(
                model_name=model_name,
                correlation_id=correlation_id,
                entity_id=entity_id,
                actual=float(actual),
                observed_at=observed_at.astimezone(UTC),
                received_at=datetime.now(UTC),
                posted_by=key_id,
            )
            session.add(row)
            session.flush()
            view = OutcomeView.from_row(row)
        return view, True
    except IntegrityError:
        # Another poster inserted the same (model, correlation id) between our read and our insert.
        existing = _find_outcome(db_url, model_name, correlation_id)
        if existing is None:
            raise
        return _same_outcome(existing, entity_id, float(actual)), False


def _find_outcome(db_url: str, model_name: str, correlation_id: str) -> OutcomeView | None:
    query = select(Outcome).where(
        (Outcome.model_name == model_name) & (Outcome.correlation_id == correlation_id)
    )
    with database.session_scope(db_url) as session:
        row = session.scalars(query).first()
        return None if row is None else OutcomeView.from_row(row)


def _same_outcome(existing: OutcomeView, entity_id: str, actual: float) -> OutcomeView:
    if existing.actual != actual:
        raise OutcomeConflictError(
            f"actual: {existing.model_name} correlation_id {existing.correlation_id!r} already has actual "
            f"{existing.actual!r}; refusing {actual!r}"
        )
    if existing.entity_id != entity_id:
        raise OutcomeConflictError(
            f"entity_id: {existing.model_name} correlation_id {existing.correlation_id!r} was recorded for "
            f"entity {existing.entity_id!r}; refusing {entity_id!r}"
        )
    return existing


RESOLVED_COLUMNS = (
    "request_id",
    "created_at",
    "phase",
    "answered_by",
    "answered_version",
    "champion_version",
    "challenger_version",
    "champion_output",
    "challenger_output",
    "correlation_id",
    "entity_id",
    "actual",
    "observed_at",
)


def predictions_resolved_by(db_url: str, model_name: str, correlation_id: str) -> int:
    """How many logged predictions of a model carry this correlation id (what one outcome resolves)."""
    query = select(func.count()).where(
        PredictionLogEntry.model_name == model_name, PredictionLogEntry.correlation_id == correlation_id
    )
    with database.session_scope(db_url) as session:
        return int(session.scalar(query) or 0)


def resolved_predictions(db_url: str, model_name: str) -> pd.DataFrame:
    """Prediction log rows of a model that have an outcome, with it (oldest first): realized accuracy reads this."""
    log, outcome = PredictionLogEntry, Outcome
    query = (
        select(
            log.request_id,
            log.created_at,
            log.phase,
            log.answered_by,
            log.answered_version,
            log.champion_version,
            log.challenger_version,
            log.champion_output,
            log.challenger_output,
            log.correlation_id,
            log.entity_id,
            outcome.actual,
            outcome.observed_at,
        )
        .join(
            outcome,
            (outcome.model_name == log.model_name) & (outcome.correlation_id == log.correlation_id),
        )
        .where(log.model_name == model_name)
        .order_by(log.created_at, log.id)
    )
    with database.session_scope(db_url) as session:
        rows = [tuple(row) for row in session.execute(query)]
    frame = pd.DataFrame(rows, columns=list(RESOLVED_COLUMNS))
    for column in ("created_at", "observed_at"):
        frame[column] = pd.to_datetime([_utc(moment) for moment in frame[column]], utc=True)
    frame["actual"] = frame["actual"].astype(float)
    return frame


# --- failure outcomes from machine events ---------------------------------------------------------------
# How long after its horizon ended an operation-completed event still labels a prediction "no failure": older
# ones stay unresolved (the event stream may not have covered their horizon), and the query stays a short range.
FAILURE_LOOKBACK = timedelta(days=7)


class FailureObservation(BaseModel):
    """What one machine event said about its machine's failure predictions, and how many it resolved."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    machine_id: str
    actual: float  # 1: the machine went down at observed_at; 0: it was running (an operation completed)
    observed_at: datetime
    predictions: int  # logged predictions whose outcome this observation is
    outcomes: int  # their correlation ids (one outcome each)
    conflicts: int  # correlation ids someone else resolved otherwise meanwhile (left as they are)


def record_failure_observation(
    db_url: str,
    machine_id: str,
    observed_at: datetime,
    failed: bool,
    key_id: str,
    *,
    model_name: str,
    horizon: timedelta,
    exclude_correlation_id: str | None = None,
    lookback: timedelta = FAILURE_LOOKBACK,
) -> FailureObservation:
    """Record a machine event as the outcome of the machine's logged failure predictions that have none yet.

    A logged prediction's forecast time is its ``created_at`` (the prediction log holds no other time; it is
    when the risk was answered, from the machine's latest sensor context) and its horizon is
    (created_at, created_at + horizon], the window a training label counts a failure in.

    - ``failed`` (the machine went down at ``observed_at``): actual 1 for the predictions whose horizon
      contains ``observed_at``;
    - not ``failed`` (an operation completed at ``observed_at``): actual 0 for those whose horizon ended at or
      before it, at most ``lookback`` before (a failure inside it would have come as a down event before).

    ``exclude_correlation_id`` is the event's own prediction (a down event is scored too). One outcome per
    correlation id, through :func:`record_outcome`. Idempotent: a replay records nothing new and counts what
    this very observation (same machine, value and time) resolved before.

    Raises OutcomeRuleError (a naive ``observed_at``, a bad machine or key id).
    """
    _check_text("machine_id", machine_id, _ENTITY_MAX, OutcomeRuleError)
    if observed_at.tzinfo is None or observed_at.utcoffset() is None:
        raise OutcomeRuleError("observed_at: must carry a time zone (naive datetimes are ambiguous)")
    at, actual = observed_at.astimezone(UTC), 1.0 if failed else 0.0
    candidates = _failure_candidates(
        db_url, model_name, machine_id, at, failed, horizon, lookback, exclude_correlation_id
    )
    known = _outcomes_of(db_url, model_name, candidates)
    resolved, conflicts = [], 0
    for correlation_id in candidates:
        existing = known.get(correlation_id)
        if existing is not None:  # resolved before: by this observation (a replay) or by something else
            if (existing.entity_id, existing.actual, existing.observed_at) == (machine_id, actual, at):
                resolved.append(correlation_id)
            continue
        try:
            record_outcome(
                db_url,
                model_name=model_name,
                correlation_id=correlation_id,
                entity_id=machine_id,
                actual=actual,
                observed_at=at,
                key_id=key_id,
            )
        except OutcomeConflictError:  # another poster resolved it otherwise between our read and our write
            conflicts += 1
            continue
        resolved.append(correlation_id)
    return FailureObservation(
        model_name=model_name,
        machine_id=machine_id,
        actual=actual,
        observed_at=at,
        predictions=_predictions_with(db_url, model_name, resolved),
        outcomes=len(resolved),
        conflicts=conflicts,
    )


def _failure_candidates(
    db_url: str,
    model_name: str,
    machine_id: str,
    at: datetime,
    failed: bool,
    horizon: timedelta,
    lookback: timedelta,
    exclude_correlation_id: str | None,
) -> list[str]:
    """Correlation ids of the machine's predictions whose horizon the observation speaks about."""
    log = PredictionLogEntry
    if failed:  # at in (created_at, created_at + horizon]
        window = (log.created_at >= at - horizon) & (log.created_at < at)
    else:  # created_at + horizon <= at, within the lookback
        window = (log.created_at <= at - horizon) & (log.created_at > at - horizon - lookback)
    query = (
        select(log.correlation_id)
        .where(log.model_name == model_name, log.entity_id == machine_id, window)
        .distinct()
    )
    if exclude_correlation_id is not None:
        query = query.where(log.correlation_id != exclude_correlation_id)
    with database.session_scope(db_url) as session:
        return sorted(session.scalars(query))


def _outcomes_of(db_url: str, model_name: str, correlation_ids: list[str]) -> dict[str, OutcomeView]:
    if not correlation_ids:
        return {}
    query = select(Outcome).where(
        Outcome.model_name == model_name, Outcome.correlation_id.in_(correlation_ids)
    )
    with database.session_scope(db_url) as session:
        return {row.correlation_id: OutcomeView.from_row(row) for row in session.scalars(query)}


def _predictions_with(db_url: str, model_name: str, correlation_ids: list[str]) -> int:
    """How many logged predictions of a model carry one of these correlation ids (what their outcomes resolve)."""
    if not correlation_ids:
        return 0
    query = select(func.count()).where(
        PredictionLogEntry.model_name == model_name, PredictionLogEntry.correlation_id.in_(correlation_ids)
    )
    with database.session_scope(db_url) as session:
        return int(session.scalar(query) or 0)
