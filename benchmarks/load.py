"""Mixed load on the PostgreSQL stack: HTTP requests on two replicas plus broker events through the bridge.

Builds (or reuses with ``--home``) a trained installation whose platform database, MLflow registry and Dagster
instance live in PostgreSQL (the production profile of ``mesops up``), starts the stack with two service
replicas and one bridge worker (``--bridge-workers``; no Dagster: nothing schedules during the run), then holds an open-loop load of
``--rate`` operations per second for ``--seconds``: each operation is sent at its scheduled time whether or
not earlier ones have answered, and its latency is measured from that scheduled time (so a stall is billed to
every request it delays, not hidden). The mix:

- 80 % ``POST /v1/failure/risk`` (a machine, round robin), 10 % ``POST /v1/yield/forecast`` (a known order);
- 5 % ``POST /v1/feedback`` (a planner accepts a recommendation answered at least a second earlier; when
  none is ready yet the slot sends a failure request instead, counted as ``feedback_substituted``);
- 5 % broker events published to the bridge's events exchange (Opcenter sensor updates and machine status
  changes, one in ten an order release: yield and energy forecasts); their latency is publish -> write-back
  received on the bridge's write-back queue.

HTTP requests alternate between the replicas and are sent by ``--processes`` client processes (``--senders``
threads in all). Afterwards it checks exactly-once: every answered prediction request has exactly one
prediction-log row (by request id), every published event has one ledger row, one prediction-log row per scored
task and exactly one write-back (events in = write-backs out, none twice), every accepted feedback moved its
recommendation out of OPEN. Prints the rate held, p50/p99 per kind, errors by status
and the exactly-once result; ends with one JSON line.

    .venv/bin/python benchmarks/load.py [--rate 500] [--seconds 60] [--senders 48] [--processes 2]
        [--bridge-workers 1] [--home PATH] [--database-prefix P]

Without ``--home`` it builds the installation in a temporary folder (~2 minutes) on fresh databases
``<prefix>_<random>`` that it drops at the end; with ``--home`` it reuses that folder and its databases
``--database-prefix`` (built there on first use, kept afterwards). Target: 500 operations/s for 60 s with
HTTP p99 <= 50 ms and no event or request lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd
import pika
import pika.exceptions
from sqlalchemy import create_engine, text

from mesops.settings import Settings, disable_telemetry, get_settings
from mesops.stack import (
    ProductionProfile,
    Stack,
    StackConfig,
    drop_databases,
    ensure_databases,
    production_profile,
)
from pipelines.runner import build_simulated_installation
from serving.bridge import topology_environment
from serving.server import free_ports

KEY = "benchmark-key-0123456789abcdef"
MIX = (("failure", 0.80), ("yield", 0.10), ("feedback", 0.05), ("event", 0.05))
TARGET_RATE, TARGET_P99_MS = 500.0, 50.0
TRAINED_MARKER = "load-benchmark-trained"
FEEDBACK_AGE_S = 1.0  # a recommendation is decided only when its log row has surely been written
AT = "2026-03-02T06:15:00Z"


# --- the installation ---------------------------------------------------------------------------------------
def prepare_home(home: Path, prefix: str) -> tuple[Settings, ProductionProfile]:
    """The production profile on ``home``: databases created if absent, trained on first use."""
    os.environ["MESOPS_HOME"] = str(home)
    os.environ.setdefault("MESOPS_PSEUDONYM_KEY", KEY)  # the replicas and the bridge read the same key
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    for name in ("MESOPS_DATABASE_URL", "MESOPS_MLFLOW_TRACKING_URI", "MESOPS_DAGSTER_POSTGRES_URL"):
        os.environ.pop(name, None)
    profile = production_profile(get_settings(), database_prefix=prefix)
    ensure_databases(profile)
    os.environ.update(profile.environment())
    settings = get_settings()
    if not (home / TRAINED_MARKER).exists():
        started = time.perf_counter()
        build_simulated_installation(settings)
        print(f"built a trained installation on PostgreSQL in {time.perf_counter() - started:.0f} s")
        (home / TRAINED_MARKER).write_text(prefix)
    return settings, profile


@dataclass
class Entities:
    """What requests and events name: the machines and orders of the context, an order's fields for events."""

    machines: list[str]
    orders: list[str]
    order: dict[str, Any]


def load_entities(settings: Settings) -> Entities:
    from serving.context import FeatureContext

    context = FeatureContext.load(settings.home)
    orders = context.tables["production_orders"]
    first = orders.iloc[0]
    order = {c: first[c] for c in ("product_id", "line_id", "planned_qty", "shift", "released_at")}
    return Entities(sorted(context.machines), sorted(orders["order_id"].astype(str))[:200], order)


# --- events --------------------------------------------------------------------------------------------------
def event_body(entities: Entities, n: int, event_id: str) -> bytes:
    """Event ``n`` of a plant's bus: one in ten an order release (each its own order and release minute), the
    rest sensor updates and machine status changes in turn (what dominates an MES's event traffic)."""
    machine = entities.machines[n % len(entities.machines)]
    if n % 10 == 5:
        o = entities.order
        event_type = "ProductionOrderReleased"
        released = o["released_at"].tz_localize("UTC") + pd.Timedelta(minutes=n)
        data: dict[str, Any] = {
            "NId": f"PO-{event_id}"[:40],
            "MaterialNId": o["product_id"],
            "ProductionLineNId": o["line_id"],
            "PlannedQuantity": float(o["planned_qty"]),
            "Shift": o["shift"],
            "ReleasedOn": released.isoformat(),
        }
    elif n % 2:
        event_type, data = "EquipmentSensorUpdate", {"EquipmentNId": machine, "Timestamp": AT}
    else:
        event_type = "EquipmentStatusChanged"
        # a status change; "down" would also settle failure outcomes (rare in a plant)
        data = {"EquipmentNId": machine, "State": "idle", "StartTime": AT}
    envelope = {"source": "opcenter", "event_type": event_type, "version": 1, "event_id": event_id}
    return json.dumps({**envelope, "occurred_at": AT, "data": data}).encode()


class EventSide:
    """Publishes events from one thread and collects write-backs on another (each its own connection)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outbox: deque[tuple[float, str, bytes]] = deque()  # (scheduled monotonic time, event id, body)
        self.sent_at: dict[str, float] = {}
        self.received: Counter[str] = Counter()
        self.latency_ms: dict[str, float] = {}
        self.broker_errors: Counter[str] = Counter()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._publish_loop, daemon=True),
            threading.Thread(target=self._consume_loop, daemon=True),
        ]

    def declare(self) -> None:
        """The bridge's topology, before anything is published, so no event waits on a missing queue."""
        from serving.bridge import declare_topology

        connection = pika.BlockingConnection(pika.URLParameters(self.settings.bridge_amqp_url))
        try:
            declare_topology(connection.channel(), self.settings)
        finally:
            connection.close()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def schedule(self, due: float, event_id: str, body: bytes) -> None:
        with self._wake:
            self.outbox.append((due, event_id, body))
            self._wake.notify()

    def _connect(self) -> pika.BlockingConnection | None:
        """A connection to the broker, or None (counted) while it is away: the loops retry."""
        try:
            return pika.BlockingConnection(pika.URLParameters(self.settings.bridge_amqp_url))
        except (pika.exceptions.AMQPError, OSError) as err:
            self.broker_errors[f"connect {type(err).__name__}"] += 1
            time.sleep(0.5)
            return None

    def _publish_loop(self) -> None:
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json"
        )
        retry: tuple[float, str, bytes] | None = None
        while not (self._stop.is_set() and not self.outbox and retry is None):
            connection = self._connect()
            if connection is None:
                continue
            try:
                channel = connection.channel()
                channel.confirm_delivery()
                while not (self._stop.is_set() and not self.outbox and retry is None):
                    if retry is None:
                        with self._wake:
                            if not self.outbox:
                                self._wake.wait(0.1)
                                continue
                            retry = self.outbox.popleft()
                    due, event_id, body = retry
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    self.sent_at.setdefault(event_id, due)
                    # a lost connection publishes the event again: the bridge deduplicates on its id
                    channel.basic_publish(
                        self.settings.bridge_events_exchange, "load.event", body, properties
                    )
                    retry = None
            except (pika.exceptions.AMQPError, OSError) as err:
                self.broker_errors[f"publish {type(err).__name__}"] += 1
            finally:
                if connection.is_open:
                    connection.close()

    def _consume_loop(self) -> None:
        while not self._stop.is_set():
            connection = self._connect()
            if connection is None:
                continue
            try:
                channel = connection.channel()
                while not self._stop.is_set():
                    method, properties, _ = channel.basic_get(
                        self.settings.bridge_writeback_queue, auto_ack=True
                    )
                    if method is None:
                        connection.sleep(0.002)
                        continue
                    event_id = properties.message_id
                    self.received[event_id] += 1
                    if event_id in self.sent_at and event_id not in self.latency_ms:
                        self.latency_ms[event_id] = (time.monotonic() - self.sent_at[event_id]) * 1000
            except (pika.exceptions.AMQPError, OSError) as err:
                self.broker_errors[f"consume {type(err).__name__}"] += 1
            finally:
                if connection.is_open:
                    connection.close()

    def wait_for(self, event_ids: set[str], stalled_s: float = 30.0, cap_s: float = 900.0) -> None:
        """Until every one of ``event_ids`` has its write-back (or none arrived for ``stalled_s``), plus one
        second for any duplicate: a slow bridge is measured, not cut off."""
        deadline = time.monotonic() + cap_s
        seen, progress_at = -1, time.monotonic()
        while time.monotonic() < deadline:
            done = len(event_ids & set(self.received))
            if done == len(event_ids):
                break
            if done != seen:
                seen, progress_at = done, time.monotonic()
            elif time.monotonic() - progress_at > stalled_s:
                break
            time.sleep(0.2)
        time.sleep(1.0)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout=30)

    def delete_topology(self) -> None:
        from serving.bridge import delete_topology

        connection = pika.BlockingConnection(pika.URLParameters(self.settings.bridge_amqp_url))
        delete_topology(connection.channel(), self.settings)
        connection.close()


# --- the HTTP side (asyncio, open loop) ----------------------------------------------------------------------
@dataclass(frozen=True)
class LoadOptions:
    """The stated load: operations per second, for how long, over how many sender threads."""

    rate: float
    seconds: float
    senders: int
    processes: int


@dataclass
class Results:
    """What the run saw, per kind."""

    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    answered: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # kind -> request ids
    decided: list[str] = field(default_factory=list)  # recommendation ids accepted
    feedback_substituted: int = 0
    lag_ms: list[float] = field(default_factory=list)  # how late the generator itself fired

    def merge(self, other: Results) -> None:
        """Add a client process's results to these."""
        for kind, samples in other.latency_ms.items():
            self.latency_ms[kind].extend(samples)
        for kind, ids in other.answered.items():
            self.answered[kind].extend(ids)
        self.errors.update(other.errors)
        self.decided.extend(other.decided)
        self.feedback_substituted += other.feedback_substituted
        self.lag_ms.extend(other.lag_ms)


def run_load(
    urls: list[str],
    keys: dict[str, str],
    entities: Entities,
    events: EventSide,
    options: LoadOptions,
    tag: str,
) -> tuple[Results, list[str], float]:
    """Fire the mix at the rate for the time; returns the results, the event ids and the wall time.

    HTTP operations are dealt round robin to ``options.processes`` spawned client processes (one Python
    process cannot send 500 requests/s with its GIL), each firing its share at the scheduled times; this
    process publishes the events on the same clock (CLOCK_MONOTONIC is shared by every process).
    """
    rng = np.random.default_rng(7)
    count = int(options.rate * options.seconds)
    kinds = [str(k) for k in rng.choice([k for k, _ in MIX], size=count, p=[p for _, p in MIX])]
    http = [(n, kind, n / options.rate) for n, kind in enumerate(kinds) if kind != "event"]
    shares = [http[i :: options.processes] for i in range(options.processes)]
    names = {"machines": entities.machines, "orders": entities.orders}
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no fork of threads and connections
    start_at = spawn.Value("d", 0.0)
    barrier = spawn.Barrier(options.processes + 1)
    senders = max(1, options.senders // options.processes)
    with spawn.Pool(options.processes, initializer=_init_client, initargs=(start_at, barrier)) as pool:
        pending = [pool.apply_async(send_share, (urls, keys, names, share, senders)) for share in shares]
        barrier.wait(timeout=300)  # every client process has started and is ready to fire
        start_at.value = time.monotonic() + 0.5  # only now: a slow start must not make every request "late"
        barrier.wait(timeout=300)  # the clients read the start time after this second meeting
        start = start_at.value
        results = Results()
        event_ids: list[str] = []
        for n, kind in enumerate(kinds):
            if kind != "event":
                continue
            due = start + n / options.rate
            event_id = f"{tag}-{n}"
            event_ids.append(event_id)
            events.schedule(due, event_id, event_body(entities, len(event_ids), event_id))
        for part in pending:
            results.merge(part.get(timeout=options.seconds + 600))
    return results, event_ids, time.monotonic() - start


_START_AT: Any = None
_BARRIER: Any = None


def _init_client(start_at: Any, barrier: Any) -> None:
    global _START_AT, _BARRIER
    _START_AT, _BARRIER = start_at, barrier


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams, with an API key.

    The load generator shares the two cores with what it measures, so it is as cheap as a client can be in
    Python: one event loop per process (no threads contending for the GIL, whose hand-offs made the generator
    itself late by seconds), requests written as bytes, answers read by ``Content-Length``.
    """

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        """Status and body of the answer; a kept-alive connection the server closed is reopened once."""
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nX-API-Key: {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        for reused in (self._streams is not None, False):
            if self._streams is None:
                self._streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._streams
            try:
                writer.write(head + data)
                return await _read_answer(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                self._streams = None
                if not reused:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).strip() or b"0", 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return status, b"".join(chunks)
    return status, await reader.readexactly(int(headers.get("content-length", "0")))


def send_share(
    urls: list[str],
    keys: dict[str, str],
    names: dict[str, list[str]],
    share: list[tuple[int, str, float]],
    senders: int,
) -> Results:
    """In a client process: fire each operation at its scheduled time on one event loop."""
    return asyncio.run(_send_share(urls, keys, names, share, senders))


async def _send_share(
    urls: list[str],
    keys: dict[str, str],
    names: dict[str, list[str]],
    share: list[tuple[int, str, float]],
    senders: int,
) -> Results:
    """Each operation starts at its time and takes a free keep-alive connection to its replica (``senders`` per
    replica and role: the concurrency bound); one waiting for a free connection still has its latency counted
    from its scheduled time."""
    results = Results()
    decidable: deque[tuple[float, str]] = deque()
    machines, orders = names["machines"], names["orders"]
    pools: list[dict[str, asyncio.Queue[Connection]]] = []
    for url in urls:
        parts = urlsplit(url)
        by_role: dict[str, asyncio.Queue[Connection]] = {}
        for role, key in keys.items():
            by_role[role] = asyncio.Queue()
            for _ in range(senders):
                by_role[role].put_nowait(Connection(parts.hostname or "127.0.0.1", parts.port or 80, key))
        pools.append(by_role)

    def request(n: int, kind: str) -> tuple[str, str, dict[str, Any]]:
        if kind == "feedback":
            ready = decidable and time.monotonic() - decidable[0][0] >= FEEDBACK_AGE_S
            if ready:
                body = {
                    "recommendation_id": decidable.popleft()[1],
                    "decision": "accept",
                    "reason_code": "agreed",
                }
                return "feedback", "/v1/feedback", body
            results.feedback_substituted += 1
            kind = "failure"
        if kind == "yield":
            return kind, "/v1/yield/forecast", {"order_id": orders[n % len(orders)]}
        return "failure", "/v1/failure/risk", {"machine_id": machines[n % len(machines)]}

    def record(kind: str, status: int, body: bytes, took: float) -> None:
        if status != 200:
            results.errors[f"{kind} HTTP {status}"] += 1
            return
        results.latency_ms[kind].append(took)
        payload = json.loads(body)
        if kind == "feedback":
            results.decided.append(payload["recommendation"]["recommendation_id"])
            return
        results.answered[kind].append(payload["request_id"])
        recommendation = payload["recommendation"]
        if recommendation["status"] in ("OPEN", "PENDING_APPROVAL"):
            decidable.append((time.monotonic(), recommendation["recommendation_id"]))

    async def send(n: int, kind: str, due: float) -> None:
        kind, path, body = request(n, kind)
        pool = pools[n % len(pools)]["planner" if kind == "feedback" else "integration"]
        connection = await pool.get()
        try:
            status, answer = await connection.post(path, body)
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            results.errors[f"{kind} {type(err).__name__}"] += 1
            connection.close()
            connection = Connection(connection.host, connection.port, connection.key)
            return
        finally:
            pool.put_nowait(connection)
        record(kind, status, answer, (time.monotonic() - due) * 1000)

    _BARRIER.wait(timeout=300)  # ready
    _BARRIER.wait(timeout=300)  # the start time is set
    start = _START_AT.value
    tasks = []
    for n, kind, offset in share:
        due = start + offset
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        results.lag_ms.append(max(0.0, (time.monotonic() - due) * 1000))
        tasks.append(asyncio.create_task(send(n, kind, due)))
    await asyncio.gather(*tasks)
    for by_role in pools:
        for pool in by_role.values():
            while not pool.empty():
                pool.get_nowait().close()
    return results


# --- exactly-once --------------------------------------------------------------------------------------------
def exactly_once(db_url: str, results: Results, events: EventSide, event_ids: list[str]) -> dict[str, Any]:
    """Every answer and every event once in the log, every event once out; the counts that disagree."""
    from serving.event_processor import fixed_ids

    engine = create_engine(db_url)
    with engine.connect() as connection:
        logged = Counter(r for (r,) in connection.execute(text("SELECT request_id FROM prediction_log")))
        ledger = {
            e: list(ids)
            for e, ids in connection.execute(text("SELECT event_id, request_ids FROM bridge_events"))
        }
        dead_ids = {e for (e,) in connection.execute(text("SELECT event_id FROM bridge_dead_letters"))}
        open_ids = {
            r
            for (r,) in connection.execute(
                text(
                    "SELECT recommendation_id FROM recommendations WHERE status IN ('OPEN', 'PENDING_APPROVAL')"
                )
            )
        }
    engine.dispose()
    answered = [r for ids in results.answered.values() for r in ids]
    published = [e for e in event_ids if e in events.sent_at]
    event_requests = [r for e in published for r in ledger.get(e, [])]
    tasks_expected = {
        fixed_ids(e, t).request_id for e in published for t in ("failure", "yield", "consumption")
    }
    figures = {
        "requests_answered": len(answered),
        "requests_missing_in_log": sum(1 for r in answered if logged[r] == 0),
        "requests_logged_twice": sum(1 for r in answered if logged[r] > 1),
        "events_published": len(published),
        "events_in_ledger": sum(1 for e in published if e in ledger),
        "event_requests_missing_in_log": sum(1 for r in event_requests if logged[r] == 0),
        "event_requests_logged_twice": sum(1 for r in event_requests if logged[r] > 1),
        "event_requests_unexpected": sum(1 for r in event_requests if r not in tasks_expected),
        "writebacks_received": sum(events.received[e] for e in published),
        "events_without_writeback": sum(1 for e in published if events.received[e] == 0),
        "events_written_back_twice": sum(1 for e in published if events.received[e] > 1),
        "dead_letters": sum(1 for e in published if e in dead_ids),
        "feedback_accepted": len(results.decided),
        "feedback_not_applied": sum(1 for r in results.decided if r in open_ids),
    }
    bad = [
        k
        for k in figures
        if k.endswith(("missing_in_log", "twice", "unexpected", "without_writeback", "not_applied"))
        and figures[k]
    ]
    figures["events_in_equals_writebacks_out"] = (
        figures["writebacks_received"] == figures["events_published"] == figures["events_in_ledger"]
    )
    figures["exactly_once"] = (
        not bad and not figures["dead_letters"] and figures["events_in_equals_writebacks_out"]
    )
    return figures


# --- report --------------------------------------------------------------------------------------------------
def percentiles(samples: list[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"n": 0, "p50_ms": None, "p99_ms": None}
    return {
        "n": len(samples),
        "p50_ms": round(float(np.percentile(samples, 50)), 2),
        "p99_ms": round(float(np.percentile(samples, 99)), 2),
    }


def main() -> None:
    """Prepare the stack, run the load, check exactly-once, print the figures and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="operations per second (all kinds)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the measured load")
    parser.add_argument("--senders", type=int, default=48, help="HTTP sender threads (concurrency bound)")
    parser.add_argument("--bridge-workers", type=int, default=1, help="`mesops bridge` processes")
    parser.add_argument("--processes", type=int, default=2, help="client processes the senders run in")
    parser.add_argument("--home", type=Path, default=None, help="reuse (or build) this installation")
    parser.add_argument("--database-prefix", default="mesops_load", help="its PostgreSQL databases' prefix")
    args = parser.parse_args()
    disable_telemetry()

    temporary = args.home is None
    tag = f"load-{uuid.uuid4().hex[:8]}"
    home = Path(tempfile.mkdtemp(prefix="mesops-bench-load-")) / "home" if temporary else args.home.resolve()
    prefix = f"{args.database_prefix}_{tag[5:]}" if temporary else args.database_prefix
    os.environ.update(topology_environment(tag))
    settings, profile = prepare_home(home, prefix)
    from governance.api_keys import create_key

    keys = {
        role: create_key(profile.platform_url, role, "load benchmark", actor="benchmark").key
        for role in ("integration", "planner")
    }
    entities = load_entities(settings)
    events = EventSide(settings)
    events.declare()
    first_port = free_ports(2)
    config = StackConfig(
        replicas=2,
        first_port=first_port,
        dagster=False,
        bridge_workers=args.bridge_workers,
        ready_timeout_s=300,
    )
    stack = Stack(profile, settings, config)
    try:
        started = time.perf_counter()
        stack.start(on_step=lambda step: print(f"  stack: {step}", flush=True))
        print(
            f"stack ready in {time.perf_counter() - started:.0f} s: replicas on {first_port}, {first_port + 1}"
        )
        urls = [f"http://127.0.0.1:{first_port + i}" for i in range(config.replicas)]
        events.start()
        warm_ids = [f"{tag}-warm-{i}" for i in range(4)]
        for i, event_id in enumerate(warm_ids):
            events.schedule(time.monotonic(), event_id, event_body(entities, i, event_id))
        for url in urls:
            with httpx.Client(base_url=url, headers={"X-API-Key": keys["integration"]}, timeout=30) as c:
                for machine in entities.machines:
                    c.post("/v1/failure/risk", json={"machine_id": machine}).raise_for_status()
        events.wait_for(set(warm_ids))
        load_before = os.getloadavg()[0]
        options = LoadOptions(args.rate, args.seconds, args.senders, args.processes)
        results, event_ids, wall = run_load(urls, keys, entities, events, options, tag)
        load_end = time.monotonic()
        events.wait_for({e for e in event_ids if e in events.sent_at})
        last = max(
            (events.sent_at[e] + events.latency_ms[e] / 1000 for e in events.latency_ms), default=load_end
        )
        drain_s = max(
            0.0, last - load_end
        )  # how long the bridge needed after the load to write back the rest
        failed = stack.failed()
        time.sleep(2.0)  # the log writers flush every 0.2 s; two seconds covers a slow batch
        checks = exactly_once(profile.platform_url, results, events, event_ids)
    finally:
        events.stop()
        stack.stop()
        events.delete_topology()
        if temporary:
            drop_databases(profile)
    report(args, results, events, event_ids, (wall, drain_s), checks, failed, load_before)


def report(
    args: argparse.Namespace,
    results: Results,
    events: EventSide,
    event_ids: list[str],
    times: tuple[float, float],
    checks: dict[str, Any],
    failed: dict[str, str],
    load_before: float,
) -> None:
    """The human-readable table, then the JSON line."""
    wall, drain_s = times
    operations = (
        sum(len(v) for v in results.latency_ms.values()) + sum(results.errors.values()) + len(event_ids)
    )
    event_latency = [events.latency_ms[e] for e in event_ids if e in events.latency_ms]
    kinds = {kind: percentiles(samples) for kind, samples in sorted(results.latency_ms.items())}
    kinds["event (publish -> write-back)"] = percentiles(event_latency)
    http = [x for samples in results.latency_ms.values() for x in samples]
    held = operations / wall if wall else 0.0
    http_p99 = percentiles(http)["p99_ms"]
    print(
        f"\nopen loop: {args.rate:.0f} ops/s asked for {args.seconds:.0f} s; held {held:.1f} ops/s over {wall:.1f} s"
    )
    print(f"generator lag p99 {np.percentile(results.lag_ms, 99):.1f} ms (how late the client itself fired)")
    print(f" {'kind':32} {'n':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, figures in [*kinds.items(), ("all HTTP", percentiles(http))]:
        print(f" {kind:32} {figures['n']:>7} {figures['p50_ms']!s:>8} {figures['p99_ms']!s:>8}")
    print(f"errors: {dict(results.errors) or 'none'}; broker errors: {dict(events.broker_errors) or 'none'}")
    print(
        f"feedback slots sent as failure requests (no recommendation old enough yet): {results.feedback_substituted}"
    )
    print(f"events: write-backs still arriving {drain_s:.1f} s after the load ended (bridge backlog)")
    print(f"components that exited during the run: {failed or 'none'}")
    print("exactly-once: " + ", ".join(f"{k} {v}" for k, v in checks.items()))
    met = bool(
        held >= 0.98 * TARGET_RATE
        and args.seconds >= 60
        and http_p99 is not None
        and http_p99 <= TARGET_P99_MS
        and checks["exactly_once"]
        and not results.errors
    )
    print(
        f"target (500 ops/s for 60 s, HTTP p99 <= {TARGET_P99_MS:.0f} ms, exactly once): {'met' if met else 'MISSED'}"
    )
    line = {
        "benchmark": "load",
        "rate_asked": args.rate,
        "seconds": args.seconds,
        "rate_held": round(held, 1),
        "latency": kinds,
        "http": percentiles(http),
        "generator_lag_p99_ms": round(float(np.percentile(results.lag_ms, 99)), 2),
        "errors": dict(results.errors),
        "feedback_substituted": results.feedback_substituted,
        "event_drain_s": round(drain_s, 1),
        "exactly_once": checks,
        "components_exited": failed,
        "loadavg_before": round(load_before, 2),
        "cpus": os.cpu_count(),
        "target_met": met,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
