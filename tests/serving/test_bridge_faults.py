"""The MES event bridge under faults, against the machine's real RabbitMQ and PostgreSQL (both started if down):
the broker restarted mid-stream, and one of two bridge worker processes killed mid-batch. Every event must end
with exactly one ledger row, one prediction-log row, one recommendation and one write-back (distinct
``message_id``). The installation is trained once per module on fresh PostgreSQL databases (the production
profile of `mesops up`), dropped afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest
from sqlalchemy import func, select

from mesops import database
from mesops.bridge_tables import ProcessedEvent
from mesops.serving_tables import PredictionLogEntry, Recommendation
from mesops.settings import Settings, get_settings
from mesops.stack import ProductionProfile, drop_databases, ensure_databases, production_profile
from serving.bridge import AmqpBridge, BrokerUnavailableError, delete_topology
from serving.event_processor import EventProcessor, fixed_ids
from serving.runtime import ServingRuntime
from tests.serving.conftest import KEY
from tests.serving.test_bridge_amqp import ensure_rabbitmq

pytestmark = pytest.mark.slow
AT = "2026-03-02T06:15:00Z"
EVENTS = 60  # per test: enough for the fault to land mid-stream, few enough to stay well under 90 s


@dataclass
class Production:
    """An installation trained on fresh PostgreSQL databases, and the environment its processes run with."""

    profile: ProductionProfile
    env: dict[str, str]


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    from pipelines.runner import build_simulated_installation
    from tests.conftest import ensure_postgres

    ensure_postgres()
    home = tmp_path_factory.mktemp("faults") / "home"
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MESOPS_DATABASE_URL", "MESOPS_MLFLOW_TRACKING_URI", "MESOPS_DAGSTER_POSTGRES_URL"):
            patch.delenv(name, raising=False)
        patch.setenv("MESOPS_HOME", str(home))
        patch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        profile = production_profile(get_settings(), database_prefix=f"mesops_faults_{uuid.uuid4().hex[:8]}")
        ensure_databases(profile)
        env = {"MESOPS_PSEUDONYM_KEY": KEY, "DAGSTER_HOME": str(home / "dagster"), **profile.environment()}
        for name, value in env.items():
            patch.setenv(name, value)
        try:
            build_simulated_installation(get_settings())
            yield Production(profile, env)
        finally:
            drop_databases(profile)


@dataclass
class Plant:
    """The trained installation with its own exchange and queue names on the shared broker."""

    settings: Settings
    env: dict[str, str]  # the MESOPS_* variables a `mesops bridge` subprocess needs for the same plant
    machines: list[str]
    order: dict[str, Any]

    @property
    def db(self) -> str:
        return self.settings.resolved_database_url


@pytest.fixture
def plant(production: Production) -> Iterator[Plant]:
    ensure_rabbitmq()
    tag = f"fault-{uuid.uuid4().hex[:8]}"
    names = {
        "bridge_events_exchange": f"{tag}.events",
        "bridge_events_queue": f"{tag}.events.in",
        "bridge_writeback_exchange": f"{tag}.writeback",
        "bridge_writeback_queue": f"{tag}.writeback.out",
        "bridge_dead_letter_exchange": f"{tag}.dead",
        "bridge_dead_letter_queue": f"{tag}.dead",
    }
    tuning = {
        "bridge_max_attempts": 5,
        "bridge_retry_delay_s": 0.05,
        "bridge_prefetch": 4,
        "bridge_reconnect_delay_s": 0.2,
        "bridge_reconnect_delay_max_s": 1.0,
        "bridge_reconnect_timeout_s": 60.0,
    }
    env = production.env | {f"MESOPS_{k.upper()}": str(v) for k, v in (names | tuning).items()}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in production.env.items():
            patch.setenv(name, value)
        settings = get_settings(**names, **tuning)
        runtime = ServingRuntime(settings)
        runtime.start()  # only to read a real order and the machines of the plant
        context = runtime.require_context()
        first = context.tables["production_orders"].iloc[0]
        order = {c: first[c] for c in ("product_id", "line_id", "planned_qty", "shift", "released_at")}
        machines = sorted(context.machines)
        runtime.close()
        try:
            assert settings.resolved_database_url.startswith("postgresql")
            yield Plant(settings, env, machines, order)
        finally:
            _restart_broker_if_down()
            _delete_topology(settings)


def _restart_broker_if_down() -> None:
    """Whatever a test did to RabbitMQ, leave it running."""
    subprocess.run(["rabbitmqctl", "start_app"], check=False, capture_output=True, timeout=60)
    ensure_rabbitmq()


def _delete_topology(settings: Settings) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(settings.bridge_amqp_url))
    delete_topology(connection.channel(), settings)
    connection.close()


def _event(source: str, event_type: str, event_id: str, data: dict[str, Any]) -> bytes:
    body = {"source": source, "event_type": event_type, "version": 1, "event_id": event_id, "occurred_at": AT}
    return json.dumps({**body, "data": data}).encode()


def _stream(plant: Plant, tag: str, n: int) -> dict[str, tuple[bytes, str]]:
    """``n`` events, alternating order releases (yield) and machine status changes (failure risk)."""
    o = plant.order
    released = o["released_at"].tz_localize("UTC").isoformat()
    events: dict[str, tuple[bytes, str]] = {}
    for i in range(n):
        event_id = f"{tag}-{i:03d}"
        if i % 2 == 0:
            data = {
                "NId": f"PO-{event_id}",
                "MaterialNId": o["product_id"],
                "ProductionLineNId": o["line_id"],
                "PlannedQuantity": float(o["planned_qty"]),
                "Shift": o["shift"],
                "ReleasedOn": released,
            }
            events[event_id] = (_event("opcenter", "ProductionOrderReleased", event_id, data), "yield")
        else:
            machine = plant.machines[i % len(plant.machines)]
            data = {"workcenterCode": machine, "status": "down", "startTime": AT}
            events[event_id] = (_event("plex", "MachineStatusChanged", event_id, data), "failure")
    return events


class Publisher:
    """Publishes events with confirms in a thread, reconnecting across a broker restart.

    An event whose confirm was lost is published again: the bridge may see it twice, and must process it once.
    """

    def __init__(self, plant: Plant, bodies: list[bytes], pause_s: float = 0.03) -> None:
        self.settings, self.bodies, self.pause_s = plant.settings, bodies, pause_s
        self.sent, self.republished = 0, 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        channel: Any = None
        deadline = time.monotonic() + 90
        try:
            while self.sent < len(self.bodies) and time.monotonic() < deadline:
                try:
                    if channel is None:
                        connection = pika.BlockingConnection(
                            pika.URLParameters(self.settings.bridge_amqp_url)
                        )
                        channel = connection.channel()
                        channel.confirm_delivery()
                    channel.basic_publish(
                        self.settings.bridge_events_exchange,
                        "fault.event",
                        self.bodies[self.sent],
                        pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
                    )
                    self.sent += 1
                    time.sleep(self.pause_s)
                except pika.exceptions.AMQPError:
                    channel = None
                    self.republished += 1
                    time.sleep(0.3)
            channel.connection.close()
        except BaseException as err:  # the test inspects it
            self.error = err


class Running:
    """An in-process bridge consuming in a thread until stopped."""

    def __init__(self, plant: Plant) -> None:
        self.runtime = ServingRuntime(plant.settings)
        self.runtime.start()
        self.bridge = AmqpBridge(plant.settings, EventProcessor(self.runtime))
        self.bridge.connect()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.bridge.run()
        except BaseException as err:  # the test inspects it
            self.error = err

    def stop(self) -> None:
        self.bridge.stop()
        self.thread.join(timeout=30)
        self.bridge.close()
        self.runtime.close()


def _count(plant: Plant, column: Any, *where: Any) -> int:
    with database.session_scope(plant.db) as session:
        return int(session.scalar(select(func.count(column)).where(*where)) or 0)


def _ledger(plant: Plant, tag: str) -> int:
    return _count(plant, ProcessedEvent.event_id, ProcessedEvent.event_id.like(f"{tag}-%"))


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``condition`` held; AssertionError naming ``what`` after ``timeout_s``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what}: not reached within {timeout_s:g} s")
        time.sleep(0.1)
    return time.monotonic() - start


def _writebacks(plant: Plant, expected: set[str], timeout_s: float = 30.0) -> list[str]:
    """The ``message_id`` of every write-back on the queue: waits for all of ``expected``, then 1 s more."""
    connection = pika.BlockingConnection(pika.URLParameters(plant.settings.bridge_amqp_url))
    channel = connection.channel()
    got: list[str] = []
    deadline, settle = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        method, properties, _ = channel.basic_get(plant.settings.bridge_writeback_queue, auto_ack=True)
        if method is not None:
            got.append(properties.message_id)
            continue
        if expected <= set(got):
            settle = settle or time.monotonic() + 1.0
            if time.monotonic() > settle:
                break
        time.sleep(0.05)
    connection.close()
    return got


def _assert_each_event_once(plant: Plant, events: dict[str, tuple[bytes, str]], written: list[str]) -> None:
    tag = next(iter(events)).rsplit("-", 1)[0]
    assert _ledger(plant, tag) == len(events)
    for event_id, (_, task) in events.items():
        ids = fixed_ids(event_id, task)
        assert _count(plant, PredictionLogEntry.id, PredictionLogEntry.request_id == ids.request_id) == 1, (
            event_id
        )
        recs = _count(plant, Recommendation.recommendation_id, Recommendation.request_id == ids.request_id)
        assert recs == 1, event_id
    assert set(written) == set(events), "every event has a write-back, and only events do"


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}"


@pytest.mark.postgres
def test_a_broker_restart_mid_stream_loses_no_event_and_processes_none_twice(plant: Plant) -> None:
    tag = uuid.uuid4().hex[:10]
    events = _stream(plant, tag, EVENTS)
    running = Running(plant)
    try:
        # paced so the restart hits the publisher too, not only the bridge
        publisher = Publisher(plant, [body for body, _ in events.values()], pause_s=0.08)
        _wait(lambda: _ledger(plant, tag) >= EVENTS // 4, 60, "a quarter of the events processed")
        at_stop, stopped = _ledger(plant, tag), time.monotonic()
        try:
            _rabbitmqctl("stop_app")
            time.sleep(1.0)
        finally:
            _rabbitmqctl("start_app")
        outage_s = time.monotonic() - stopped
        recovered_s = _wait(lambda: _ledger(plant, tag) == EVENTS, 60, "every event in the ledger")
        publisher.thread.join(timeout=90)
        written = _writebacks(plant, set(events))
    finally:
        running.stop()
    print(
        f"\nbroker restart: stopped with {at_stop} of {EVENTS} events in the ledger; broker away "
        f"{outage_s:.1f} s (stop_app to start_app done); ledger complete {recovered_s:.1f} s later; "
        f"bridge counts {running.bridge.counts}; publisher connection retries {publisher.republished}; "
        f"write-backs {len(written)} ({len(written) - len(set(written))} repeated message ids)"
    )
    assert publisher.error is None and publisher.sent == EVENTS
    assert running.error is None, running.error
    assert running.bridge.counts["reconnects"] >= 1  # the fault did hit the bridge mid-stream
    _assert_each_event_once(plant, events, written)
    assert len(written) - len(set(written)) <= plant.settings.bridge_prefetch  # only lost confirms repeat


def _worker(plant: Plant, log_path: Path) -> subprocess.Popen[bytes]:
    mesops = Path(sys.executable).with_name("mesops")
    env = {**os.environ, **plant.env}
    with log_path.open("wb") as out:
        return subprocess.Popen([str(mesops), "bridge"], env=env, stdout=out, stderr=subprocess.STDOUT)


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


def _consumers(plant: Plant) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(plant.settings.bridge_amqp_url))
    try:
        method = connection.channel().queue_declare(plant.settings.bridge_events_queue, passive=True)
        return int(method.method.consumer_count)
    except pika.exceptions.ChannelClosedByBroker:  # not declared yet: no worker is up
        return 0
    finally:
        if connection.is_open:
            connection.close()


@pytest.mark.postgres
def test_killing_one_of_two_bridge_workers_mid_stream_loses_no_event(plant: Plant, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    events = _stream(plant, tag, EVENTS)
    workers = [_worker(plant, tmp_path / f"worker-{i}.log") for i in range(2)]
    survivor_log = tmp_path / "worker-1.log"
    try:
        started_s = _wait(lambda: _consumers(plant) == 2, 60, "both bridge workers consuming")
        publisher = Publisher(plant, [body for body, _ in events.values()], pause_s=0.02)
        _wait(lambda: _ledger(plant, tag) >= EVENTS // 4, 60, "a quarter of the events processed")
        victim = workers[0]
        at_kill = _ledger(plant, tag)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        publisher.thread.join(timeout=90)
        finished_s = _wait(lambda: _ledger(plant, tag) == EVENTS, 60, "every event in the ledger")
        written = _writebacks(plant, set(events))
        survivor = workers[1]
        assert survivor.poll() is None, "the surviving worker went on"
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
    print(
        f"\nworker kill: both workers up in {started_s:.1f} s; killed one with {at_kill} of {EVENTS} events in "
        f"the ledger; the other finished {finished_s:.1f} s later; write-backs {len(written)} "
        f"({len(written) - len(set(written))} repeated message ids); survivor: {_last_line(survivor_log)}"
    )
    assert publisher.error is None and publisher.sent == EVENTS
    assert victim.returncode == -signal.SIGKILL and survivor.returncode == 0
    _assert_each_event_once(plant, events, written)
    assert len(written) - len(set(written)) <= plant.settings.bridge_prefetch  # only lost confirms repeat


def _unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, timeout_s: float) -> AmqpBridge:
    """A bridge whose broker never answers (nothing listens on port 1); the processor is never reached."""
    monkeypatch.setenv("MESOPS_HOME", str(tmp_path))
    settings = get_settings(
        bridge_amqp_url="amqp://guest:guest@127.0.0.1:1/%2F",
        bridge_reconnect_delay_s=0.05,
        bridge_reconnect_delay_max_s=0.2,
        bridge_reconnect_timeout_s=timeout_s,
    )
    return AmqpBridge(settings, EventProcessor(runtime=None))  # type: ignore[arg-type]


def test_the_bridge_gives_up_after_the_reconnect_timeout_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = _unreachable(tmp_path, monkeypatch, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="bridge_reconnect_timeout_s 1"):
        bridge.run()
    assert 1.0 <= time.monotonic() - started < 5.0


def test_stop_ends_a_bridge_waiting_for_its_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bridge = _unreachable(tmp_path, monkeypatch, timeout_s=60.0)
    thread = threading.Thread(target=bridge.run, daemon=True)
    thread.start()
    time.sleep(0.5)
    bridge.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
