"""The prediction log, written off the request path: handlers submit records, one thread writes batches.

A request handler builds a :class:`LoggedPrediction` and calls :meth:`PredictionLogWriter.submit`: a lock, two
counters and a deque append (about a microsecond), never the database. One background thread takes up to
``batch_rows`` records, or whatever arrived within ``flush_interval_s``, scores the challenger of the shadow
records (one predict per model for the whole batch, so shadow scoring never costs a request its latency and
costs the writer microseconds per row), and inserts the batch's ``prediction_log`` rows and
``recommendations`` rows in one transaction with a SQLAlchemy Core bulk insert.

What a crash of the process loses: records live in memory until their batch commits. A crash loses the
records submitted in the last ``flush_interval_s`` plus the batch being written (at most ``batch_rows`` plus
what arrived meanwhile); with the defaults (0.2 s, 500 rows) that is about 0.2 s of traffic, as long as the
writer keeps up (otherwise everything ``pending``). While the database is away (e.g. PostgreSQL restarting)
the writer keeps its batch and retries with capped exponential backoff, and records accumulate up to
``max_pending``; a crash during an outage loses all of them. Beyond ``max_pending``, submit() raises
LogOverloadedError and the service answers 503 instead of answering requests that would never be logged.

Each row is written once: request_id is unique in the table. When a write hits an IntegrityError (a retry
whose previous attempt had committed but lost its acknowledgement, or one row breaking a constraint), the
batch is written row by row, one transaction per row, skipping request_ids already present. A row the
database refuses on its own (a constraint, a value the column cannot hold) is dropped, logged as an error and
counted in ``rejected``; it is never retried forever and never holds back the rows behind it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Self

from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from mesops import database
from mesops.serving_tables import PredictionLogEntry, Recommendation
from mesops.settings import Settings

logger = logging.getLogger("mesops.serving.prediction_log")

THREAD_NAME = "mesops-prediction-log"
RETRY_MIN_S = 0.05
RETRY_MAX_S = 2.0
# request_ids per IN (...) when looking for rows an earlier attempt committed (SQLite's bound-parameter limit).
_LOOKUP_CHUNK = 500

_LOG_TABLE: Table = PredictionLogEntry.__table__  # type: ignore[assignment]
_RECOMMENDATION_TABLE: Table = Recommendation.__table__  # type: ignore[assignment]

FeatureValue = float | str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedRecommendation:
    """A recommendation made from one prediction, as it is first stored (no planner decision yet)."""

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
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ShadowCall:
    """The challenger's scoring of one record, deferred to the writer thread.

    Records whose calls share ``group`` (model name and challenger version) are scored together: one
    ``score_many`` call over all their payloads, i.e. one model predict per batch instead of one per row. If
    that call fails, each record of the group is scored alone, so a bad payload costs only its own output.
    ``score_many`` returns one output dict per payload, in order.
    """

    group: Hashable
    score_many: Callable[[list[Any]], list[Any]]
    payload: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedPrediction:
    """One served prediction to log; a plain dataclass because it is built on the request path.

    ``shadow``, when given, computes the challenger's output in the writer thread just before the row is
    written; its result replaces ``challenger_output`` (a failure becomes ``{"error": "<type>: <message>"}``).
    """

    request_id: str
    created_at: datetime
    endpoint: str
    model_name: str
    phase: str
    entity_id: str
    correlation_id: str
    answered_by: Literal["champion", "challenger"]
    answered_version: str
    champion_version: str | None
    challenger_version: str | None
    features: dict[str, FeatureValue]
    champion_output: dict[str, Any] | None
    challenger_output: dict[str, Any] | None = None
    recommendation: LoggedRecommendation | None = None
    status: Literal["ok", "error"]
    latency_ms: float
    shadow: ShadowCall | None = None


class LogOverloadedError(RuntimeError):
    """max_pending records already wait for the database: refuse the request (503) rather than lose its log."""


class LogWriterStateError(RuntimeError):
    """The writer was used out of order: submit() or start() after close(), flush() before start()."""


class PredictionLogWriter:
    """Batches prediction log records in memory and writes them from one background thread.

    ``on_written(batch)`` runs in the writer thread after each commit with the records as stored (shadow
    outputs filled in, ``shadow`` cleared), before flush() counts them: once flush() returns, the hook has
    seen every row it waited for. Its exceptions are logged, never raised.
    """

    def __init__(
        self,
        db_url: str,
        *,
        batch_rows: int,
        flush_interval_s: float,
        max_pending: int,
        on_written: Callable[[list[LoggedPrediction]], None] | None = None,
        retry_min_s: float = RETRY_MIN_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        for name, value, rule in (
            ("batch_rows", batch_rows, batch_rows >= 1),
            ("flush_interval_s", flush_interval_s, flush_interval_s > 0),
            ("max_pending", max_pending, max_pending >= 1),
            ("retry_min_s", retry_min_s, 0 < retry_min_s <= retry_max_s),
        ):
            if not rule:
                raise ValueError(f"PredictionLogWriter {name}={value!r} is out of range")
        self._url = db_url
        self._batch_rows = batch_rows
        self._flush_interval_s = flush_interval_s
        self._max_pending = max_pending
        self._on_written = on_written
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._queue: deque[LoggedPrediction] = deque()
        # A plain Lock (not the default RLock) keeps submit() at its cheapest.
        self._cond = threading.Condition(threading.Lock())
        self._submitted = 0  # records accepted by submit(), ever
        self._done = 0  # records written or rejected, ever: flush() waits for _done to pass its target
        # The largest _submitted a flush() waits for: while it is ahead of _done the writer takes what is queued.
        self._flush_upto = 0
        self._stopping = False
        self._closed = False
        self._abandon = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0
        self._rejected = 0
        self._failed_writes = 0
        self._shadow_errors = 0
        self._outage_failures = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, on_written: Callable[[list[LoggedPrediction]], None] | None = None
    ) -> PredictionLogWriter:
        """A writer on the platform database with the prediction_log_* settings."""
        return cls(
            settings.resolved_database_url,
            batch_rows=settings.prediction_log_batch_rows,
            flush_interval_s=settings.prediction_log_flush_s,
            max_pending=settings.prediction_log_max_pending,
            on_written=on_written,
        )

    @property
    def pending(self) -> int:
        """Records submitted and not yet written (queued, or in the batch being written)."""
        return self._submitted - self._done

    @property
    def written(self) -> int:
        """Rows committed to the prediction log by this writer."""
        return self._written

    @property
    def rejected(self) -> int:
        """Records dropped because the database refused the row itself (each logged as an error)."""
        return self._rejected

    @property
    def failed_writes(self) -> int:
        """Write attempts that failed because the database was away; their batches were retried."""
        return self._failed_writes

    @property
    def shadow_errors(self) -> int:
        """Shadow callables that raised; their rows were written with the error as challenger_output."""
        return self._shadow_errors

    @property
    def running(self) -> bool:
        """Whether the writer thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the writer thread (again: no-op). Call it in the process that submits, after any fork."""
        with self._cond:
            if self._closed:
                raise LogWriterStateError("prediction log writer is closed: start() after close()")
            if self._thread is None:
                self._start_thread()

    def submit(self, record: LoggedPrediction) -> None:
        """Queue one record for writing; never blocks, never touches the database."""
        with self._cond:
            if self._closed:
                raise LogWriterStateError("prediction log writer is closed: submit() after close()")
            if self._submitted - self._done >= self._max_pending:
                raise LogOverloadedError(
                    f"prediction log: {self._submitted - self._done} records wait for the database "
                    f"(prediction_log_max_pending={self._max_pending})"
                )
            self._queue.append(record)
            self._submitted += 1
            if len(self._queue) == self._batch_rows:
                self._cond.notify()

    def flush(self, timeout_s: float = 5.0) -> None:
        """Block until every record submitted before the call is committed (or rejected)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._submitted
            if self._done >= target:
                return
            if self._thread is None:
                raise LogWriterStateError("prediction log writer is not started: call start() before flush()")
            self._flush_upto = max(self._flush_upto, target)
            self._cond.notify_all()
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"prediction log flush timed out after {timeout_s} s: {target - self._done} records "
                        f"submitted before it are not written yet ({self._submitted - self._done} pending in all)"
                    )
                self._cond.wait(remaining)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is pending and stop the thread; a second call does nothing."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._cond.notify_all()
            if self._thread is None:
                if not self._queue:
                    return
                self._start_thread()  # records submitted before start() are written, not dropped
        thread = self._thread
        assert thread is not None
        thread.join(timeout_s)
        if thread.is_alive():
            self._abandon.set()
            thread.join(1.0)
            raise TimeoutError(
                f"prediction log writer closed after {timeout_s} s with {self.pending} records not written "
                "(the database is unreachable)"
            )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _start_thread(self) -> None:
        # Daemon: a writer stuck on an unreachable database must not keep the process alive; close() drains.
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._abandon.is_set():
            batch = self._take()
            if batch is None:
                return
            if batch:
                self._handle(batch)

    def _take(self) -> list[LoggedPrediction] | None:
        """The next batch: full, or what arrived within flush_interval_s; None when stopping with nothing left."""
        deadline = time.monotonic() + self._flush_interval_s
        with self._cond:
            while not self._batch_ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if not self._queue:
                return None if self._stopping else []
            queue = self._queue
            return [queue.popleft() for _ in range(min(len(queue), self._batch_rows))]

    def _batch_ready(self) -> bool:
        queued = len(self._queue)
        return queued >= self._batch_rows or self._stopping or (queued > 0 and self._flush_upto > self._done)

    def _handle(self, batch: list[LoggedPrediction]) -> None:
        prepared = self._prepare(batch)
        written = self._write(prepared)
        if written is None:  # abandoned by close(): the batch stays counted as pending
            return
        if written and self._on_written is not None:
            try:
                self._on_written(written)
            except Exception:  # a metrics hook must never stop the log
                logger.exception("prediction log on_written hook failed on a batch of %d rows", len(written))
        # Counted done after the hook, so flush() returning means the metrics have seen the rows too.
        with self._cond:
            self._written += len(written)
            self._rejected += len(batch) - len(written)
            self._done += len(batch)
            self._cond.notify_all()

    def _prepare(self, batch: list[LoggedPrediction]) -> list[_Prepared]:
        """Score the shadows and build the rows; a record whose fields cannot be stored is rejected."""
        prepared: list[_Prepared] = []
        shadow_failures: list[str] = []
        shadows = _score_shadows(batch)
        for index, record in enumerate(batch):
            if index in shadows:
                output, failure = shadows[index]
                if failure is not None:
                    shadow_failures.append(f"request {record.request_id}: {failure}")
                    output = {"error": failure}
                record = dataclasses.replace(record, challenger_output=output, shadow=None)
            try:
                prepared.append(_Prepared(record, _log_row(record), _recommendation_row(record)))
            except Exception as err:  # a malformed record is dropped alone; it must not stop the writer
                logger.error(
                    "prediction log record %s dropped: %s: %s", record.request_id, type(err).__name__, err
                )
        if shadow_failures:
            self._shadow_errors += len(shadow_failures)
            logger.warning(
                "shadow scoring failed for %d of %d records in a batch; first: %s",
                len(shadow_failures),
                len(batch),
                shadow_failures[0],
            )
        return prepared

    def _write(self, prepared: list[_Prepared]) -> list[LoggedPrediction] | None:
        """Write the batch, retrying with capped backoff while the database is away; None if abandoned."""
        attempt = 0
        while not self._abandon.is_set():
            try:
                written = _write_batch(database.get_engine(self._url), prepared)
            except Exception as err:  # database down, restarting, locked, schema missing: keep the batch
                self._failed_writes += 1
                self._outage_failures += 1
                if self._outage_failures == 1:
                    logger.warning(
                        "prediction log database unavailable, keeping %d rows and retrying: %s",
                        len(prepared),
                        _describe(err),
                    )
                self._abandon.wait(min(self._retry_max_s, self._retry_min_s * 2 ** min(attempt, 30)))
                attempt += 1
                continue
            if self._outage_failures:
                logger.warning(
                    "prediction log database reachable again after %d failed attempts", self._outage_failures
                )
                self._outage_failures = 0
            return written
        return None


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A record with its prediction_log row and, if it made one, its recommendations row."""

    record: LoggedPrediction
    log_row: dict[str, Any]
    recommendation_row: dict[str, Any] | None


ShadowResult = tuple[dict[str, Any] | None, str | None]  # the output, or None and "<type>: <message>"


def _score_shadows(batch: list[LoggedPrediction]) -> dict[int, ShadowResult]:
    """The challenger's output per index of a record with a shadow call: one score_many call per group."""
    groups: dict[Hashable, list[int]] = {}
    for index, record in enumerate(batch):
        if record.shadow is not None:
            groups.setdefault(record.shadow.group, []).append(index)
    results: dict[int, ShadowResult] = {}
    for indices in groups.values():
        calls = [batch[i].shadow for i in indices]
        outputs = _call_many(calls[0].score_many, [c.payload for c in calls])  # type: ignore[union-attr]
        if outputs is None:  # the group failed together: score each alone so only the culprit loses out
            results.update((i, _score_one(batch[i].shadow)) for i in indices)  # type: ignore[arg-type]
        else:
            results.update((i, _as_output(out)) for i, out in zip(indices, outputs, strict=True))
    return results


def _call_many(score_many: Callable[[list[Any]], list[Any]], payloads: list[Any]) -> list[Any] | None:
    if len(payloads) == 1:
        return None  # scored by _score_one, which reports the failure itself
    try:
        outputs = score_many(payloads)
    except Exception:  # a challenger bug or one bad payload: retried record by record
        return None
    return outputs if isinstance(outputs, list) and len(outputs) == len(payloads) else None


def _score_one(call: ShadowCall) -> ShadowResult:
    try:
        outputs = call.score_many([call.payload])
    except Exception as err:  # a challenger bug costs its output, never the log row
        return None, f"{type(err).__name__}: {err}"
    if not isinstance(outputs, list) or len(outputs) != 1:
        return None, f"TypeError: shadow returned {type(outputs).__name__}, expected a list of one output"
    return _as_output(outputs[0])


def _as_output(output: Any) -> ShadowResult:
    if not isinstance(output, dict):
        return None, f"TypeError: shadow returned {type(output).__name__}, expected dict"
    return output, None


def _utc(value: datetime, field: str, request_id: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(
            f"{field} of request {request_id} is a naive datetime: it must be timezone-aware (UTC)"
        )
    return value.astimezone(UTC)


def _log_row(record: LoggedPrediction) -> dict[str, Any]:
    recommendation = record.recommendation
    return {
        "request_id": record.request_id,
        "created_at": _utc(record.created_at, "created_at", record.request_id),
        "endpoint": record.endpoint,
        "model_name": record.model_name,
        "phase": record.phase,
        "entity_id": record.entity_id,
        "correlation_id": record.correlation_id,
        "answered_by": record.answered_by,
        "answered_version": record.answered_version,
        "champion_version": record.champion_version,
        "challenger_version": record.challenger_version,
        "features": record.features,
        "champion_output": record.champion_output,
        "challenger_output": record.challenger_output,
        "recommendation_id": recommendation.recommendation_id if recommendation else None,
        "status": record.status,
        # float(): numpy scalars other than float64 are not adapted by every driver
        "latency_ms": float(record.latency_ms),
    }


def _recommendation_row(record: LoggedPrediction) -> dict[str, Any] | None:
    rec = record.recommendation
    if rec is None:
        return None
    return {
        "recommendation_id": rec.recommendation_id,
        "request_id": record.request_id,
        "model_name": rec.model_name,
        "model_version": rec.model_version,
        "phase": rec.phase,
        "entity_id": rec.entity_id,
        "line_id": rec.line_id,
        "correlation_id": rec.correlation_id,
        "action_class": rec.action_class,
        "text": rec.text,
        "details": rec.details,
        "status": rec.status,
        "created_at": _utc(rec.created_at, "recommendation.created_at", record.request_id),
    }


def _is_row_error(err: Exception) -> bool:
    """Whether the rows themselves caused the error (a constraint, a value), not the database being away."""
    if isinstance(err, IntegrityError | DataError):
        return True
    # A StatementError that is not a DBAPIError was raised binding a value (e.g. JSON that cannot serialize).
    return isinstance(err, StatementError) and not isinstance(err, DBAPIError)


def _describe(err: Exception) -> str:
    """Type and driver message, without the SQL text and parameters SQLAlchemy appends."""
    orig = getattr(err, "orig", None)
    return f"{type(err).__name__}: {str(orig or err).strip()}"


def _insert(engine: Engine, items: Sequence[_Prepared]) -> None:
    """One transaction: the prediction_log rows, then the recommendations rows (Core executemany)."""
    recommendation_rows = [i.recommendation_row for i in items if i.recommendation_row is not None]
    with engine.begin() as connection:
        connection.execute(insert(_LOG_TABLE), [i.log_row for i in items])
        if recommendation_rows:
            connection.execute(insert(_RECOMMENDATION_TABLE), recommendation_rows)


def _write_batch(engine: Engine, prepared: list[_Prepared]) -> list[LoggedPrediction]:
    """Write the batch in one transaction, or row by row if a row breaks it; returns the records now stored."""
    if not prepared:
        return []
    try:
        _insert(engine, prepared)
    except Exception as err:
        if not _is_row_error(err):
            raise
        return _write_row_by_row(engine, prepared, err)
    return [p.record for p in prepared]


def _write_row_by_row(engine: Engine, prepared: list[_Prepared], cause: Exception) -> list[LoggedPrediction]:
    """Skip request_ids already stored (an earlier attempt committed), write each other row on its own."""
    present = _present_request_ids(engine, (p.record.request_id for p in prepared))
    logger.info(
        "prediction log batch of %d rows refused (%s); writing row by row, %d already stored",
        len(prepared),
        _describe(cause),
        len(present),
    )
    stored: list[LoggedPrediction] = []
    seen: set[str] = set()
    for item in prepared:
        request_id = item.record.request_id
        if request_id in seen:
            logger.error("prediction log row %s dropped: its request_id is twice in one batch", request_id)
            continue
        seen.add(request_id)
        if request_id in present:
            stored.append(item.record)
            continue
        try:
            _insert(engine, [item])
        except Exception as err:
            if not _is_row_error(err):
                raise  # the database went away: the whole batch is retried, stored rows are found present
            logger.error(
                "prediction log row %s refused by the database and dropped: %s", request_id, _describe(err)
            )
            continue
        stored.append(item.record)
    return stored


def _present_request_ids(engine: Engine, request_ids: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(request_ids))
    present: set[str] = set()
    with engine.connect() as connection:
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            column = _LOG_TABLE.c.request_id
            present.update(connection.scalars(select(column).where(column.in_(chunk))))
    return present
