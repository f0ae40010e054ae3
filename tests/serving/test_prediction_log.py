"""The prediction log writer stores every submitted record once, off the request path, and survives outages."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mesops import database
from mesops.serving_tables import PredictionLogEntry, Recommendation
from mesops.settings import Settings
from serving.prediction_log import (
    THREAD_NAME,
    LoggedPrediction,
    LoggedRecommendation,
    LogOverloadedError,
    LogWriterStateError,
    PredictionLogWriter,
    ShadowCall,
)

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MakeWriter = Callable[..., PredictionLogWriter]
LOG_COLUMNS = [
    c.name for c in PredictionLogEntry.__table__.columns if c.name not in ("id", "recommendation_id")
]
RECOMMENDATION_COLUMNS = [c.name for c in Recommendation.__table__.columns]


def _record(n: int, *, recommendation: bool = False, **changes: Any) -> LoggedPrediction:
    machine = f"M-{n % 7:02d}"
    rec = None
    if recommendation:
        rec = LoggedRecommendation(
            recommendation_id=f"rec-{n:04d}",
            model_name="mesops-failure",
            model_version="3",
            phase="approval",
            entity_id=machine,
            line_id="L1",
            correlation_id=f"{machine}@{n}",
            action_class="inspect",
            text="Inspect the spindle bearing within 24 h",
            details={"probability": 0.8, "horizon_h": 24},
            status="PENDING_APPROVAL",
            created_at=NOW,
        )
    values: dict[str, Any] = {
        "request_id": f"req-{n:04d}",
        "created_at": NOW + timedelta(seconds=n),
        "endpoint": "predict_failure",
        "model_name": "mesops-failure",
        "phase": "approval",
        "entity_id": machine,
        "correlation_id": f"{machine}@{n}",
        "answered_by": "challenger",
        "answered_version": "3",
        "champion_version": "2",
        "challenger_version": "3",
        "features": {
            "torque_nm": 40.5 + n,
            "tool_wear_min": float(n),
            "product_type": "M",
            "vibration": None,
        },
        "champion_output": {"probability": 0.1},
        "recommendation": rec,
        "status": "ok",
        "latency_ms": 1.25 + n,
    }
    return LoggedPrediction(**(values | changes))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _log_rows(url: str) -> dict[str, dict[str, Any]]:
    with database.session_scope(url) as session:
        rows = session.scalars(select(PredictionLogEntry).order_by(PredictionLogEntry.id)).all()
        return {r.request_id: {c: getattr(r, c) for c in [*LOG_COLUMNS, "recommendation_id"]} for r in rows}


def _recommendation_rows(url: str) -> dict[str, dict[str, Any]]:
    with database.session_scope(url) as session:
        rows = session.scalars(select(Recommendation)).all()
        return {r.recommendation_id: {c: getattr(r, c) for c in RECOMMENDATION_COLUMNS} for r in rows}


def _assert_stored(url: str, records: list[LoggedPrediction]) -> None:
    """Every record is one prediction_log row (and one recommendations row) with exactly its values."""
    rows = _log_rows(url)
    assert sorted(rows) == sorted(r.request_id for r in records)
    recommendations = _recommendation_rows(url)
    for record in records:
        row = rows[record.request_id]
        for column in LOG_COLUMNS:
            expected = getattr(record, column)
            stored = row[column]
            assert (_utc(stored) if column == "created_at" else stored) == expected, column
        rec = record.recommendation
        assert row["recommendation_id"] == (rec.recommendation_id if rec else None)
        if rec is not None:
            stored_rec = recommendations.pop(rec.recommendation_id)
            assert stored_rec["request_id"] == record.request_id
            assert _utc(stored_rec.pop("created_at")) == rec.created_at
            for column in (
                "decision",
                "reason_code",
                "modified_value",
                "comment",
                "decided_by",
                "decided_at",
            ):
                assert stored_rec.pop(column) is None
            for column, value in stored_rec.items():
                if column not in ("request_id", "decided_role"):
                    assert value == getattr(rec, column), column
    assert recommendations == {}


@pytest.fixture
def url(settings: Settings) -> str:
    database.upgrade(settings.resolved_database_url)
    return settings.resolved_database_url


@pytest.fixture
def make_writer() -> Iterator[MakeWriter]:
    """Started writers with small batches; each is closed after the test even if it failed."""
    writers: list[PredictionLogWriter] = []

    def make(db_url: str, **options: Any) -> PredictionLogWriter:
        defaults: dict[str, Any] = {"batch_rows": 3, "flush_interval_s": 0.05, "max_pending": 1000}
        writer = PredictionLogWriter(db_url, **(defaults | options))
        writer.start()
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        # A test that left its database away has already failed on its own assertion.
        with contextlib.suppress(TimeoutError):
            writer.close(timeout_s=2.0)


class _Captured(logging.Handler):
    """Keeps the records of one logger (the suite runs with pytest's logging plugin off)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[_Captured]:
    handler = _Captured()
    log = logging.getLogger("mesops.serving.prediction_log")
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)


def _wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_rows_and_recommendations_are_stored_as_submitted(url: str, make_writer: MakeWriter) -> None:
    writer = make_writer(url)
    records = [_record(n, recommendation=n % 2 == 0) for n in range(8)]
    for record in records:
        writer.submit(record)
    writer.flush()
    _assert_stored(url, records)
    assert (writer.written, writer.pending, writer.rejected, writer.failed_writes) == (8, 0, 0, 0)


def test_flush_writes_at_once_without_waiting_for_a_full_batch(url: str, make_writer: MakeWriter) -> None:
    # The interval is far longer than flush's timeout: flush returning proves it woke the writer.
    writer = make_writer(url, batch_rows=1000, flush_interval_s=60.0)
    writer.submit(_record(1))
    writer.submit(_record(2, recommendation=True))
    writer.flush(timeout_s=5.0)
    assert sorted(_log_rows(url)) == ["req-0001", "req-0002"]
    assert list(_recommendation_rows(url)) == ["rec-0002"]


def _alone(score: Callable[[], Any], group: str = "solo") -> ShadowCall:
    """A shadow call scoring one record with ``score`` (each payload-less record scored the same way)."""
    return ShadowCall(group, lambda payloads: [score() for _ in payloads], None)


def test_shadow_runs_in_the_writer_thread_and_fills_challenger_output(
    url: str, make_writer: MakeWriter
) -> None:
    threads: list[tuple[str, int]] = []
    batches: list[list[LoggedPrediction]] = []

    def shadow() -> dict[str, Any]:
        threads.append((threading.current_thread().name, threading.get_ident()))
        return {"probability": 0.35}

    writer = make_writer(url, on_written=batches.append)
    writer.submit(_record(1, answered_by="champion", phase="shadow", shadow=_alone(shadow)))
    writer.flush()
    assert threads == [(THREAD_NAME, threads[0][1])] and threads[0][1] != threading.get_ident()
    assert _log_rows(url)["req-0001"]["challenger_output"] == {"probability": 0.35}
    [[written]] = batches
    assert written.challenger_output == {"probability": 0.35} and written.shadow is None


def test_failing_shadow_still_writes_the_row_with_the_error(url: str, make_writer: MakeWriter) -> None:
    def broken() -> dict[str, Any]:
        raise ValueError("challenger artifact missing")

    writer = make_writer(url)
    writer.submit(_record(1, shadow=_alone(broken, "a")))
    writer.submit(_record(2, shadow=_alone(lambda: [0.3], "b")))
    writer.submit(_record(3, shadow=_alone(lambda: {"probability": 0.2}, "c")))
    writer.submit(_record(4, shadow=ShadowCall("d", lambda payloads: {"probability": 0.2}, None)))
    writer.flush()
    rows = _log_rows(url)
    assert rows["req-0001"]["challenger_output"] == {"error": "ValueError: challenger artifact missing"}
    assert rows["req-0002"]["challenger_output"] == {
        "error": "TypeError: shadow returned list, expected dict"
    }
    assert rows["req-0003"]["challenger_output"] == {"probability": 0.2}
    assert rows["req-0004"]["challenger_output"] == {
        "error": "TypeError: shadow returned dict, expected a list of one output"
    }
    assert (writer.shadow_errors, writer.written) == (3, 4)


def test_shadows_of_one_group_are_scored_with_one_call_per_batch(url: str, make_writer: MakeWriter) -> None:
    calls: list[tuple[str, list[int]]] = []

    def scorer(model: str) -> Callable[[list[int]], list[dict[str, Any]]]:
        def score_many(payloads: list[int]) -> list[dict[str, Any]]:
            calls.append((model, list(payloads)))
            return [{"model": model, "x": p} for p in payloads]

        return score_many

    writer = make_writer(url, batch_rows=100, flush_interval_s=60.0)
    for n in range(1, 7):
        model = "v2" if n % 3 else "v3"  # two challenger versions in one batch (a reload in between)
        writer.submit(_record(n, shadow=ShadowCall(model, scorer(model), n)))
    writer.flush()
    assert sorted(calls) == [("v2", [1, 2, 4, 5]), ("v3", [3, 6])]
    rows = _log_rows(url)
    assert [rows[f"req-{n:04d}"]["challenger_output"] for n in (1, 3)] == [
        {"model": "v2", "x": 1},
        {"model": "v3", "x": 3},
    ]


def test_one_bad_payload_costs_only_its_own_shadow_output(url: str, make_writer: MakeWriter) -> None:
    def score_many(payloads: list[float]) -> list[dict[str, Any]]:
        return [{"half": 1 / p} for p in payloads]  # payload 0 breaks the whole call

    writer = make_writer(url, batch_rows=100, flush_interval_s=60.0)
    for n, payload in enumerate([2.0, 0.0, 4.0], start=1):
        writer.submit(_record(n, shadow=ShadowCall("g", score_many, payload)))
    writer.flush()
    rows = _log_rows(url)
    assert [rows[f"req-{n:04d}"]["challenger_output"] for n in (1, 2, 3)] == [
        {"half": 0.5},
        {"error": "ZeroDivisionError: float division by zero"},
        {"half": 0.25},
    ]
    assert writer.shadow_errors == 1


def test_close_writes_what_is_pending_and_is_idempotent(url: str) -> None:
    writer = PredictionLogWriter(url, batch_rows=100, flush_interval_s=60.0, max_pending=100)
    writer.submit(_record(1))
    with pytest.raises(LogWriterStateError, match="start"):
        writer.flush()
    writer.start()
    writer.submit(_record(2, recommendation=True))
    writer.close()
    assert not writer.running
    _assert_stored(url, [_record(1), _record(2, recommendation=True)])
    writer.close()
    with pytest.raises(LogWriterStateError, match="submit"):
        writer.submit(_record(3))
    with pytest.raises(LogWriterStateError, match="start"):
        writer.start()


def test_from_settings_takes_the_prediction_log_fields(settings: Settings) -> None:
    limited = settings.model_copy(update={"prediction_log_max_pending": 2})
    database.upgrade(limited.resolved_database_url)
    writer = PredictionLogWriter.from_settings(limited)
    writer.submit(_record(1))
    writer.submit(_record(2))
    with pytest.raises(LogOverloadedError, match="prediction_log_max_pending=2"):
        writer.submit(_record(3))
    writer.close()
    assert sorted(_log_rows(limited.resolved_database_url)) == ["req-0001", "req-0002"]


def test_overload_while_the_database_is_away_then_every_row_once(
    settings: Settings,
    make_writer: MakeWriter,
    captured: _Captured,
) -> None:
    # The platform database has no schema yet: every write fails until it is upgraded.
    url = settings.resolved_database_url
    writer = make_writer(url, max_pending=4)
    records = [_record(n, recommendation=n == 2) for n in range(4)]
    for record in records:
        writer.submit(record)
    _wait_until(lambda: writer.failed_writes >= 3)
    with pytest.raises(LogOverloadedError, match="4 records wait"):
        writer.submit(_record(9))
    with pytest.raises(TimeoutError, match="4 records"):
        writer.flush(timeout_s=0.1)

    database.upgrade(url)
    writer.flush(timeout_s=10.0)
    _assert_stored(url, records)
    assert (writer.written, writer.pending) == (4, 0)
    warnings = [r.getMessage() for r in captured.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "unavailable" in warnings[0] and "reachable again" in warnings[1]

    writer.submit(_record(9))
    writer.flush()
    assert len(_log_rows(url)) == 5


def test_retry_of_a_committed_batch_writes_no_duplicate(url: str, make_writer: MakeWriter) -> None:
    # The state an attempt leaves when it committed but lost its acknowledgement: its rows are stored.
    writer = make_writer(url, batch_rows=10)
    already = [_record(1, recommendation=True), _record(2)]
    for record in already:
        writer.submit(record)
    writer.flush()
    retried = [*already, _record(3, recommendation=True), _record(4)]
    for record in retried:
        writer.submit(record)
    writer.flush()
    _assert_stored(url, retried)
    assert (writer.written, writer.rejected) == (6, 0)


def test_a_row_the_database_refuses_is_dropped_alone(
    url: str,
    make_writer: MakeWriter,
    captured: _Captured,
) -> None:
    writer = make_writer(url, batch_rows=10)
    good = [_record(1), _record(3, recommendation=True)]
    writer.submit(good[0])
    writer.submit(_record(2, entity_id=None))  # NOT NULL column
    writer.submit(good[1])
    writer.submit(_record(4, created_at=datetime(2026, 3, 1, 8, 0)))  # naive time: cannot be stored as UTC
    writer.submit(_record(5, features={"torque_nm": object()}))  # not JSON
    writer.submit(_record(6, created_at=None))
    writer.flush()
    _assert_stored(url, good)
    assert (writer.written, writer.rejected, writer.pending) == (2, 4, 0)
    dropped = sorted(r.getMessage().split()[3] for r in captured.records if r.levelno == logging.ERROR)
    assert dropped == ["req-0002", "req-0004", "req-0005", "req-0006"]
    writer.submit(_record(7))  # the writer thread is still alive and writing
    writer.flush()
    assert "req-0007" in _log_rows(url)


def test_on_written_gets_each_batch_and_its_errors_do_not_stop_the_log(
    url: str,
    make_writer: MakeWriter,
    captured: _Captured,
) -> None:
    sizes: list[int] = []

    def hook(batch: list[LoggedPrediction]) -> None:
        sizes.append(len(batch))
        raise RuntimeError("metrics backend down")

    writer = make_writer(url, batch_rows=3, on_written=hook)
    for n in range(8):
        writer.submit(_record(n))
    writer.flush()
    assert len(_log_rows(url)) == 8
    assert sum(sizes) == 8 and max(sizes) <= 3
    errors = [r.getMessage() for r in captured.records if r.levelno == logging.ERROR]
    assert len(errors) == len(sizes) and all("on_written hook failed" in e for e in errors)


@pytest.mark.postgres
def test_rows_and_retries_on_postgresql(postgres_database: str, make_writer: MakeWriter) -> None:
    database.upgrade(postgres_database)
    writer = make_writer(postgres_database, batch_rows=50)
    first = [_record(n, recommendation=n % 3 == 0) for n in range(40)]
    for record in first:
        writer.submit(record)
    writer.flush()
    # A retried batch (half of it committed before) and one row PostgreSQL refuses (too long for its column).
    retried = [*first[20:], *[_record(n, recommendation=n % 3 == 0) for n in range(40, 60)]]
    for record in [*retried, _record(99, entity_id="M" * 500)]:
        writer.submit(record)
    writer.flush()
    _assert_stored(postgres_database, [*first, *retried[20:]])
    assert (writer.written, writer.rejected, writer.pending) == (80, 1, 0)
