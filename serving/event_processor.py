"""Events to committed predictions, outcomes and write-backs, a group at a time (transport-independent).

The bridge's transports (serving/bridge.py) hand :meth:`EventProcessor.process_many` the bodies of the events
they hold unacknowledged; for each it returns what the transport must do:

- :class:`Processed`: publish its write-backs (none for a duplicate), then acknowledge;
- :class:`DeadLetterError`: dead-letter it with these reasons (a bad event: never retried);
- any other exception: a transient failure (database away, log writer overloaded or slow): retry, bounded.

Per group:

1. validate every event against its contract (serving/events.py);
2. look the events up in the ledger (``bridge_events``, one query): an event already published is a duplicate;
   one committed but not yet published republishes its stored write-back;
3. score the others through the same handlers as the HTTP service (serving/handlers.py), with request and
   recommendation ids derived from the event id (a prediction an earlier delivery committed is reused, never
   scored twice); new orders' yield features are built in one pass for the whole group. A released order gets
   a yield forecast and a consumption forecast of its line's meter(s) for the release day; a day that cannot be
   forecast skips the consumption part (the reason goes in the ledger), never the event;
4. wait once until the group's prediction-log rows are committed, read them back (one query), build each
   write-back from the committed rows and record the group in the ledger (one transaction).

Outcomes come from events too: an order closed is its yield forecast's outcome; a machine going ``down`` and an
operation completed are failure outcomes (1 and 0) of the machine's logged failure predictions whose horizon
they settle (governance/recommendations.py :func:`~governance.recommendations.record_failure_observation`).

Grouping is what lets one bridge worker keep up: the fixed costs (a feature build over the history, a commit,
a few round trips) are paid per group instead of per event, while the guarantees stay per event.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from governance import recommendations as recs
from governance.registry import model_name
from mesops import database
from mesops.bridge_tables import DeadLetter, ProcessedEvent
from mesops.serving_tables import PredictionLogEntry, Recommendation
from serving import handlers, scoring, writeback
from serving.context import FeatureContext, UnknownEntityError
from serving.events import EventError, MesEvent, parse_event
from serving.prediction_log import LogOverloadedError, LogWriterStateError
from serving.runtime import NotReadyError, ServingRuntime
from serving.schemas import ConsumptionRequest, FailureRiskRequest, OutcomeRequest, YieldRequest
from serving.scoring import FeatureError

log = logging.getLogger("mesops.bridge")
BRIDGE_KEY_ID = "mes-bridge"  # who posted an outcome that arrived as an event (no person: the integration)
ENDPOINTS = {
    "order_released": "bridge:yield",
    "machine_status": "bridge:failure",
    "sensor_update": "bridge:failure",
}
CONSUMPTION_ENDPOINT = "bridge:consumption"
FAILED_STATE = "down"  # the machine status that is a failure (training labels count down events)
# Failures that say nothing about the event: retried (bounded). Everything else about an event is permanent.
TRANSIENT = (
    NotReadyError,
    LogOverloadedError,
    LogWriterStateError,
    TimeoutError,
    handlers.NotCommittedError,
    SQLAlchemyError,
    database.DatabaseError,
)
PERMANENT = (
    UnknownEntityError,
    FeatureError,
    recs.OutcomeRuleError,
    recs.OutcomeConflictError,
    ValueError,
)


class DeadLetterError(Exception):
    """The event cannot be processed: dead-letter it with these reasons (each names a field and a rule)."""

    def __init__(self, reasons: list[str], event: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(reasons))
        self.reasons, self.event = reasons, event or {}


@dataclass(frozen=True)
class Processed:
    """What one event produced: write-backs still to publish (none for a duplicate) and whether it is new."""

    event_id: str
    writebacks: list[writeback.WriteBack]
    duplicate: bool = False


Result = Processed | Exception  # per event: done, or a DeadLetterError, or a transient failure to retry
T = TypeVar("T")


@dataclass(frozen=True)
class Part:
    """One prediction an event asks for: its task, the entity scored and the ids the event fixes for it."""

    task: str
    entity_id: str
    ids: handlers.FixedIds


@dataclass(frozen=True)
class Recorded:
    """An event's ledger entry: the predictions it committed, its write-backs and what it told (outcome JSON)."""

    event: MesEvent
    request_ids: list[str]
    writebacks: list[writeback.WriteBack]
    outcome: dict[str, Any] | None = None


@dataclass
class Plan:
    """An event's predictions, and the parts skipped because they cannot be forecast (ledger entries)."""

    parts: list[Part]
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def needed(self) -> list[Part]:
        """The parts that must be committed before the event is done."""
        dropped = {s["request_id"] for s in self.skipped if s.get("request_id")}
        return [p for p in self.parts if p.ids.request_id not in dropped]


def fixed_ids(event_id: str, task: str) -> handlers.FixedIds:
    """Request and recommendation ids of an event's prediction: the same on every delivery of the event."""
    digest = hashlib.sha256(f"{event_id}|{task}".encode()).hexdigest()
    return handlers.FixedIds(request_id=f"evt-{digest[:32]}", recommendation_id=f"rec-{digest[32:56]}")


def consumption_ids(event_id: str, meters: list[str]) -> dict[str, handlers.FixedIds]:
    """Fixed ids of a released order's consumption forecasts: one meter per line is the usual plant
    (``fixed_ids(event_id, "consumption")``); several meters each get ``f"{event_id}|consumption|{meter}"``."""
    if len(meters) == 1:
        return {meters[0]: fixed_ids(event_id, "consumption")}
    return {meter: fixed_ids(event_id, f"consumption|{meter}") for meter in meters}


def task_of(event: MesEvent) -> str:
    """The model an event is scored with first (only for kinds in ENDPOINTS)."""
    return "yield" if event.kind == "order_released" else "failure"


def release_day(event: MesEvent) -> date:
    """The day a released order's energy is forecast for: its release day, counted in UTC like the readings."""
    assert event.order is not None
    return event.order.released_at.astimezone(UTC).date()


def meters_by_line(readings: pd.DataFrame | None) -> dict[str, list[str]]:
    """The energy meters measuring each line, from the readings (``meter_id`` and ``line_id``)."""
    if readings is None or readings.empty or not {"meter_id", "line_id"} <= set(readings.columns):
        return {}
    pairs = readings[["line_id", "meter_id"]].dropna().drop_duplicates()
    return {
        str(line): sorted(str(m) for m in group["meter_id"])
        for line, group in pairs.groupby("line_id", sort=True)
    }


@dataclass
class EventProcessor:
    """Turns groups of raw events into committed predictions, outcomes and write-backs.

    ``after_commit`` (tests) is called with each event id once its predictions are committed, before anything
    is published or acknowledged.
    """

    runtime: ServingRuntime
    commit_timeout_s: float = 10.0
    after_commit: Callable[[str], None] | None = None
    # the meters of each line, for the feature context it was read from (rebuilt when the context changes)
    _meters: tuple[FeatureContext, dict[str, list[str]]] | None = field(default=None, init=False, repr=False)

    @property
    def db_url(self) -> str:
        return self.runtime.db_url

    def process_many(self, bodies: list[bytes]) -> list[Result]:
        """One result per body, in order (see the module docstring); only BaseExceptions escape."""
        results: dict[int, Result] = {}
        events: dict[int, MesEvent] = {}
        first: dict[str, int] = {}  # event id -> index of its first copy in the group
        limit = self.runtime.settings.bridge_max_event_bytes
        for index, body in enumerate(bodies):
            if len(body) > limit:
                reason = f"(body): too_large: {len(body)} bytes, at most {limit} (bridge_max_event_bytes)"
                results[index] = DeadLetterError([reason])
                continue
            try:
                event = parse_event(body)
            except EventError as err:
                results[index] = DeadLetterError(err.reasons, err.envelope)
                continue
            first.setdefault(event.event_id, index)
            events[index] = event
        unique = [events[i] for i in first.values()]
        try:
            done = self._process_group(unique)
        except TRANSIENT as err:  # a group-wide step failed (database away): every event of it is retried
            done = {e.event_id: err for e in unique}
        for index, event in events.items():
            result = done[event.event_id]
            if index != first[event.event_id] and isinstance(result, Processed):
                result = Processed(event.event_id, [], duplicate=True)  # a second copy in the same group
            results[index] = result
        return [results[i] for i in range(len(bodies))]

    # --- one group -----------------------------------------------------------------------------------------
    def _process_group(self, events: list[MesEvent]) -> dict[str, Result]:
        """Every event of the group (distinct ids) to its result; TRANSIENT errors of a shared step propagate."""
        known = self._ledger([e.event_id for e in events])
        results: dict[str, Result] = {
            e.event_id: self._replay(known[e.event_id]) for e in events if e.event_id in known
        }
        fresh = [e for e in events if e.event_id not in known]
        scored = [e for e in fresh if e.kind in ENDPOINTS]
        results.update(self._score_group(scored))
        for event in fresh:
            if event.kind not in ENDPOINTS:
                results[event.event_id] = self._guarded(event, self._record_outcome)
        return results

    def _score_group(self, events: list[MesEvent]) -> dict[str, Result]:
        """Score the parts not scored by an earlier delivery, wait for their commit, record the events with
        their write-backs (and, for a machine gone down, the failure outcomes it settles)."""
        if not events:
            return {}
        plans = {e.event_id: self._plan(e) for e in events}
        every = [p.ids.request_id for plan in plans.values() for p in plan.parts]
        logged = handlers.logged_request_ids(self.db_url, every)
        todo = {
            e.event_id: missing
            for e in events
            if (missing := [p for p in plans[e.event_id].parts if p.ids.request_id not in logged])
        }
        results: dict[str, Result] = {}
        self._prepare_yield_features(
            [e for e in events if any(p.task == "yield" for p in todo.get(e.event_id, []))]
        )
        for event in events:
            if event.event_id in todo:
                work = partial(self._score_parts, parts=todo[event.event_id], plan=plans[event.event_id])
                failed = self._guarded(event, work)
                if failed is not None:
                    results[event.event_id] = failed
        if any(event_id not in results for event_id in todo):
            self.runtime.writer.flush(self.commit_timeout_s)
        waiting = [e for e in events if e.event_id not in results]
        needed = [p.ids.request_id for e in waiting for p in plans[e.event_id].needed()]
        committed = committed_predictions(self.db_url, needed)
        recorded: list[Recorded] = []
        for event in waiting:
            done = self._committed(event, plans[event.event_id], committed)
            if isinstance(done, Exception):
                results[event.event_id] = done
            else:
                recorded.append(done)
        results.update(self._record_many(recorded))
        return results

    def _committed(
        self, event: MesEvent, plan: Plan, committed: dict[str, writeback.CommittedPrediction]
    ) -> Recorded | Exception:
        """The ledger entry of an event whose predictions are all committed, or why it is not done."""
        needed = plan.needed()
        absent = [p.ids.request_id for p in needed if p.ids.request_id not in committed]
        if absent:
            return handlers.NotCommittedError(
                f"prediction(s) {', '.join(absent)} of event {event.event_id} were not stored by the log writer"
            )
        if self.after_commit is not None:
            self.after_commit(event.event_id)
        try:
            built = self._writeback(event, [committed[p.ids.request_id] for p in needed], plan)
        except ValueError as err:
            return DeadLetterError([str(err)], _meta(event))
        outcome: dict[str, Any] | None = {"skipped": plan.skipped} if plan.skipped else None
        if event.kind == "machine_status" and event.state == FAILED_STATE:
            observed = self._guarded(event, lambda e: self._observe_failure(e, failed=True))
            if isinstance(observed, Exception):
                return observed
            outcome = observed.model_dump(mode="json")
        return Recorded(event, [p.ids.request_id for p in needed], [built], outcome)

    def _guarded(self, event: MesEvent, work: Callable[[MesEvent], T]) -> T | Exception:
        """Run one event's own step; a permanent failure is its dead letter, a transient one its retry."""
        try:
            return work(event)
        except TRANSIENT as err:
            return err
        except PERMANENT as err:
            return DeadLetterError([str(err)], _meta(event))

    def _prepare_yield_features(self, events: list[MesEvent]) -> None:
        """Build the features of the group's new orders in one pass (each handler then finds its own)."""
        headers = [{"order_id": e.order_id, **e.order.model_dump()} for e in events if e.order is not None]
        if len(headers) > 1:
            # one bad header fails the shared build: then each event is built (and fails) on its own below
            with contextlib.suppress(*PERMANENT):
                self.runtime.require_context().yield_features_many(headers)

    def _plan(self, event: MesEvent) -> Plan:
        """The predictions an event asks for: failure risk, or a released order's yield and its line's energy."""
        if event.kind != "order_released":
            assert event.machine_id is not None
            return Plan([Part("failure", event.machine_id, fixed_ids(event.event_id, "failure"))])
        assert event.order_id is not None and event.order is not None
        plan = Plan([Part("yield", event.order_id, fixed_ids(event.event_id, "yield"))])
        line = event.order.line_id
        meters = self._meters_of(line)
        if not meters:
            reason = f"line_id: no energy readings of line {line!r} have been ingested (no meter to forecast)"
            plan.skipped.append(
                {"task": "consumption", "entity_id": None, "request_id": None, "reason": reason}
            )
        for meter, ids in consumption_ids(event.event_id, meters).items():
            plan.parts.append(Part("consumption", meter, ids))
        return plan

    def _meters_of(self, line_id: str) -> list[str]:
        context = self.runtime.require_context()
        if self._meters is None or self._meters[0] is not context:
            self._meters = (context, meters_by_line(context.tables.get("energy_readings")))
        return self._meters[1].get(line_id, [])

    def _score_parts(self, event: MesEvent, parts: list[Part], plan: Plan) -> None:
        """Score an event's missing parts, its own model first; a consumption day that cannot be forecast is
        skipped (recorded in the plan), anything else fails the event."""
        for part in parts:
            if part.task != "consumption":
                self._score(event, part.ids)
                continue
            try:
                request = ConsumptionRequest(meter_id=part.entity_id, day=release_day(event))
                handlers.consumption(self.runtime, request, CONSUMPTION_ENDPOINT, part.ids)
            except UnknownEntityError as err:
                plan.skipped.append(
                    {
                        "task": "consumption",
                        "entity_id": part.entity_id,
                        "request_id": part.ids.request_id,
                        "reason": str(err),
                    }
                )

    def _score(self, event: MesEvent, ids: handlers.FixedIds) -> None:
        endpoint = ENDPOINTS[event.kind]
        if task_of(event) == "yield":
            assert event.order_id is not None
            request = YieldRequest(order_id=event.order_id, order=event.order)
            handlers.yield_forecast(self.runtime, request, endpoint, ids)
        else:
            assert event.machine_id is not None
            failure = FailureRiskRequest(machine_id=event.machine_id, correlation_id=event.event_id)
            handlers.failure(self.runtime, failure, endpoint, ids)

    def _writeback(
        self, event: MesEvent, predictions: list[writeback.CommittedPrediction], plan: Plan
    ) -> writeback.WriteBack:
        first, *energy = predictions
        if event.kind != "order_released":
            return writeback.build(event.source, event.event_id, first)
        skipped = [s["reason"] for s in plan.skipped]
        return writeback.build_release(
            event.source, event.event_id, first, energy, release_day(event), skipped
        )

    def _observe_failure(self, event: MesEvent, *, failed: bool) -> recs.FailureObservation:
        """A machine down (1) or an operation completed (0) as the outcome of the machine's failure predictions
        it settles; the event's own prediction (a down event is scored too) is not one of them."""
        assert event.machine_id is not None and event.observed_at is not None
        return recs.record_failure_observation(
            self.db_url,
            event.machine_id,
            event.observed_at,
            failed,
            BRIDGE_KEY_ID,
            model_name=model_name("failure"),
            horizon=timedelta(hours=scoring.HORIZON_HOURS),
            exclude_correlation_id=event.event_id,
        )

    def _record_outcome(self, event: MesEvent) -> Result:
        """Order closed: the yield outcome (joins its forecast); operation completed: failure outcomes 0 of the
        machine's predictions whose horizon it closes."""
        if event.kind == "operation_completed":
            outcome = self._observe_failure(event, failed=False).model_dump(mode="json")
        else:
            assert event.order_id is not None and event.good_qty is not None and event.observed_at is not None
            answered = handlers.outcome(
                self.runtime,
                OutcomeRequest(
                    model="yield",
                    correlation_id=event.order_id,
                    entity_id=event.order_id,
                    actual=event.good_qty,
                    observed_at=event.observed_at,
                ),
                BRIDGE_KEY_ID,
            )
            outcome = answered.model_dump(mode="json")
        return self._record_many([Recorded(event, [], [], outcome)])[event.event_id]

    # --- the ledger ----------------------------------------------------------------------------------------
    def _ledger(self, event_ids: list[str]) -> dict[str, ProcessedEvent]:
        if not event_ids:
            return {}
        with database.session_scope(self.db_url) as session:
            rows = session.scalars(select(ProcessedEvent).where(ProcessedEvent.event_id.in_(event_ids)))
            return {row.event_id: row for row in rows}

    def _replay(self, known: ProcessedEvent) -> Processed:
        if known.published_at is not None:
            return Processed(known.event_id, [], duplicate=True)
        return Processed(known.event_id, [writeback.WriteBack(**w) for w in known.writebacks])

    def _record_many(self, recorded: list[Recorded]) -> dict[str, Result]:
        """Write the ledger rows in one transaction; when another consumer recorded one meanwhile, row by row
        (an event recorded by someone else is a duplicate of theirs)."""
        if not recorded:
            return {}
        now = datetime.now(UTC)
        try:
            with database.session_scope(self.db_url) as session:
                session.add_all([_ledger_row(r, now) for r in recorded])
            return {r.event.event_id: Processed(r.event.event_id, r.writebacks) for r in recorded}
        except IntegrityError:
            if len(recorded) == 1:
                return {recorded[0].event.event_id: self._replay_recorded(recorded[0].event.event_id)}
        results: dict[str, Result] = {}
        for r in recorded:
            try:
                with database.session_scope(self.db_url) as session:
                    session.add(_ledger_row(r, now))
                results[r.event.event_id] = Processed(r.event.event_id, r.writebacks)
            except IntegrityError:
                results[r.event.event_id] = self._replay_recorded(r.event.event_id)
        return results

    def _replay_recorded(self, event_id: str) -> Result:
        known = self._ledger([event_id]).get(event_id)
        if known is None:
            return handlers.NotCommittedError(f"ledger row of event {event_id} could not be written")
        return self._replay(known)

    def mark_published(self, event_ids: list[str]) -> None:
        """Every write-back of these events is confirmed by the broker: a later delivery publishes nothing."""
        if not event_ids:
            return
        with database.session_scope(self.db_url) as session:
            session.execute(
                update(ProcessedEvent)
                .where(ProcessedEvent.event_id.in_(event_ids), ProcessedEvent.published_at.is_(None))
                .values(published_at=datetime.now(UTC))
            )

    def record_dead_letter(
        self, transport: str, body: bytes, reasons: list[str], attempts: int, event: dict[str, Any]
    ) -> int | None:
        """Count a dead letter (reasons, body hash; never the body); None when the database is away."""
        row = DeadLetter(
            transport=transport,
            event_id=_text(event.get("event_id"), 200),
            source=_text(event.get("source"), 20),
            event_type=_text(event.get("event_type"), 60),
            reasons=reasons,
            attempts=attempts,
            body_sha256=hashlib.sha256(body).hexdigest(),
            body_bytes=len(body),
            received_at=datetime.now(UTC),
        )
        try:
            with database.session_scope(self.db_url) as session:
                session.add(row)
                session.flush()
                return row.id
        except SQLAlchemyError as err:  # the body is safe in the dead-letter queue; say the count missed it
            log.error(
                "dead letter of event %s not counted (database unavailable): %s", event.get("event_id"), err
            )
            return None


def committed_predictions(db_url: str, request_ids: list[str]) -> dict[str, writeback.CommittedPrediction]:
    """The predictions and recommendations of ``request_ids`` as the database holds them (those committed)."""
    if not request_ids:
        return {}
    found = {}
    with database.session_scope(db_url) as session:
        pairs = session.execute(
            select(PredictionLogEntry, Recommendation)
            .join(Recommendation, Recommendation.recommendation_id == PredictionLogEntry.recommendation_id)
            .where(PredictionLogEntry.request_id.in_(request_ids))
        )
        for entry, rec in pairs:
            output = entry.champion_output if entry.answered_by == "champion" else entry.challenger_output
            found[entry.request_id] = writeback.CommittedPrediction(
                request_id=entry.request_id,
                model_name=entry.model_name,
                model_version=entry.answered_version,
                phase=entry.phase,
                answered_by=entry.answered_by,
                entity_id=entry.entity_id,
                line_id=rec.line_id,
                correlation_id=entry.correlation_id,
                output=output or {},
                recommendation_id=rec.recommendation_id,
                action_class=rec.action_class,
                text=rec.text,
                details=rec.details,
                status=rec.status,
            )
    return found


def envelope_of(body: bytes) -> dict[str, Any]:
    """event_id, source and event_type of a body, as far as it can be read (for dead-letter headers)."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: raw[k] for k in ("event_id", "source", "event_type") if isinstance(raw.get(k), str)}


def _ledger_row(recorded: Recorded, now: datetime) -> ProcessedEvent:
    event = recorded.event
    return ProcessedEvent(
        event_id=event.event_id,
        source=event.source,
        event_type=event.event_type,
        schema_version=event.version,
        request_ids=recorded.request_ids,
        writebacks=[b.as_dict() for b in recorded.writebacks],
        outcome=recorded.outcome,
        processed_at=now,
        published_at=None if recorded.writebacks else now,
    )


def _meta(event: MesEvent) -> dict[str, Any]:
    return {"event_id": event.event_id, "source": event.source, "event_type": event.event_type}


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None
