"""PostgreSQL restarts under load: requests fail fast with a clear 503 (or succeed), the service and the event
bridge recover by themselves, every answered request has exactly one prediction-log row, and every event
published during the outage is processed exactly once (held by the bridge, not dead-lettered)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from sqlalchemy import create_engine, insert, select, text

from governance.api_keys import create_key
from mesops import database
from mesops.rollout_tables import ModelAlias
from mesops.settings import get_settings
from serving.bridge import delete_topology, topology_environment
from serving.event_processor import fixed_ids
from serving.prediction_log import RETRY_MAX_S
from serving.server import REPO_ROOT, ServerProcess, free_port
from tests.conftest import POSTGRES_ADMIN_URL, ensure_postgres
from tests.serving.conftest import KEY, Installation

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
OUTAGE_S = 3.0  # PostgreSQL stays down this long: long enough for the log writer to hit it several times
REQUEST_TIMEOUT_S = 10.0  # no request may take longer than this, outage or not
ANSWER_BOUND_S = 5.0  # ... and every answer (200 or 503) comes within this
REFUSAL_BOUND_S = 1.0  # a 503 is fast: the service refuses at once, it does not wait for the database
# the writer's next retry comes at most RETRY_MAX_S after PostgreSQL is back; then the backlog drains at once
RECOVERY_S = RETRY_MAX_S + 1.0
MAX_PENDING = 200  # a small backlog, so the outage outlasts it and the 503 path is exercised too
AT = "2026-03-02T06:15:00Z"
EVENT_PAUSE_S = 0.05  # the publisher's pace: ~20 machine status events a second, before, during and after


def _pg_ctl(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


@dataclass
class Load:
    """One client thread sending failure-risk requests back to back until stopped."""

    url: str
    key: str
    machines: list[str]
    answers: list[tuple[float, int, float, str | None, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"X-API-Key": self.key}, timeout=REQUEST_TIMEOUT_S) as c:
            n = 0
            while not self.stop.is_set():
                machine = self.machines[n % len(self.machines)]
                started = time.monotonic()
                try:
                    answer = c.post("/v1/failure/risk", json={"machine_id": machine})
                    status, body = answer.status_code, answer.json()
                except (httpx.TransportError, ValueError) as err:
                    status, body = 0, {"detail": f"{type(err).__name__}: {err}"}
                took = time.monotonic() - started
                request_id = body.get("request_id") if status == 200 else None
                self.answers.append((started, status, took, request_id, str(body.get("detail", ""))))
                n += 1
                time.sleep(0.005)


def _copy_aliases(sqlite_url: str, postgres_url: str) -> None:
    """Champion and challenger aliases of the trained home, in the fresh PostgreSQL platform database."""
    source, target = create_engine(sqlite_url), create_engine(postgres_url)
    try:
        with source.connect() as connection:
            rows = [dict(r._mapping) for r in connection.execute(select(ModelAlias.__table__))]
        assert rows, "the trained installation has no model aliases"
        with target.begin() as connection:
            connection.execute(insert(ModelAlias.__table__), rows)
    finally:
        source.dispose()
        target.dispose()


def _admin(statement: str, **params: str) -> None:
    # a fresh engine each time: a pooled connection would not survive the restart
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement), params)
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh platform database, dropped afterwards (after PostgreSQL is surely up again)."""
    ensure_postgres()
    name = f"mesops_test_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        ensure_postgres()
        _admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n", n=name)
        _admin(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def served_on_postgres(
    installation: Installation,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, str, str, list[str]]]:
    """The service on a copy of the trained home whose platform database is a fresh PostgreSQL database."""
    home = tmp_path / "home"
    shutil.copytree(installation.pristine, home)
    monkeypatch.setenv("MESOPS_HOME", str(home))
    monkeypatch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
    sqlite_url = get_settings().resolved_database_url
    database.upgrade(postgres_url)
    _copy_aliases(sqlite_url, postgres_url)
    monkeypatch.setenv("MESOPS_DATABASE_URL", postgres_url)
    monkeypatch.setenv("MESOPS_PREDICTION_LOG_MAX_PENDING", str(MAX_PENDING))
    settings = get_settings()
    key = create_key(postgres_url, "integration", "restart test").key
    from serving.context import FeatureContext

    machines = sorted(FeatureContext.load(settings.home).machines)
    process = ServerProcess(settings, port=free_port(), log_path=home / "logs" / "serving-restart.log")
    process.start(ready_timeout_s=180)
    try:
        yield process.url, key, postgres_url, machines
    finally:
        process.stop()
        ensure_postgres()  # whatever happened, other tests need the server


@dataclass
class Bridge:
    """A `mesops bridge` process on the PostgreSQL platform database with this test's own queues."""

    process: subprocess.Popen[bytes]
    settings: Any
    log_path: Path


@pytest.fixture
def bridge_on_postgres(
    served_on_postgres: tuple[str, str, str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Bridge]:
    from tests.serving.test_bridge_amqp import ensure_rabbitmq

    ensure_rabbitmq()
    tag = f"pgrestart-{uuid.uuid4().hex[:8]}"
    for name, value in topology_environment(tag).items():
        monkeypatch.setenv(name, value)
    settings = get_settings()
    log_path = tmp_path / "bridge.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mesops", "bridge"],
            cwd=REPO_ROOT,
            env=dict(os.environ),
            stdout=out,
            stderr=out,
        )
    try:
        yield Bridge(process, settings, log_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        connection = pika.BlockingConnection(pika.URLParameters(settings.bridge_amqp_url))
        delete_topology(connection.channel(), settings)
        connection.close()


@dataclass
class Events:
    """A publisher thread sending machine status events at a steady pace until stopped (confirmed by the broker)."""

    settings: Any
    machines: list[str]
    tag: str
    sent: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from serving.bridge import declare_topology

        connection = pika.BlockingConnection(pika.URLParameters(self.settings.bridge_amqp_url))
        channel = connection.channel()
        declare_topology(channel, self.settings)
        channel.confirm_delivery()
        n = 0
        while not self.stop.is_set():
            event_id = f"{self.tag}-{n}"
            data = {"EquipmentNId": self.machines[n % len(self.machines)], "State": "idle", "StartTime": AT}
            envelope = {"source": "opcenter", "event_type": "EquipmentStatusChanged", "version": 1}
            body = {**envelope, "event_id": event_id, "occurred_at": AT, "data": data}
            channel.basic_publish(
                self.settings.bridge_events_exchange,
                "restart.event",
                json.dumps(body).encode(),
                pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            )
            self.sent.append(event_id)
            n += 1
            time.sleep(EVENT_PAUSE_S)
        connection.close()

    def writebacks(self, timeout_s: float) -> Counter[str]:
        """Message ids on the write-back queue: waits until every sent event has one (or the timeout)."""
        got: Counter[str] = Counter()
        connection = pika.BlockingConnection(pika.URLParameters(self.settings.bridge_amqp_url))
        channel = connection.channel()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not set(self.sent) <= set(got):
            method, properties, _ = channel.basic_get(self.settings.bridge_writeback_queue, auto_ack=True)
            if method is None:
                time.sleep(0.1)
                continue
            got[properties.message_id] += 1
        connection.close()
        return got


def _logged(postgres_url: str) -> Counter[str]:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            return Counter(r for (r,) in connection.execute(text("SELECT request_id FROM prediction_log")))
    finally:
        engine.dispose()


def test_restart_under_load_fails_fast_recovers_and_logs_each_answer_once(
    served_on_postgres: tuple[str, str, str, list[str]], bridge_on_postgres: Bridge
) -> None:
    url, key, postgres_url, machines = served_on_postgres
    load = Load(url, key, machines)
    thread = threading.Thread(target=load.run, daemon=True)
    events = Events(bridge_on_postgres.settings, machines, f"pg-{uuid.uuid4().hex[:8]}")
    publisher = threading.Thread(target=events.run, daemon=True)
    _wait_consuming(bridge_on_postgres)
    thread.start()
    publisher.start()
    try:
        time.sleep(2.0)  # steady state first
        down_at = time.monotonic()
        _pg_ctl("stop")
        time.sleep(OUTAGE_S)
        _pg_ctl("start")
        up_at = time.monotonic()
        ensure_postgres()  # waits until it accepts connections
        time.sleep(RECOVERY_S + 3.0)  # the service catches up by itself: nobody restarts it
    finally:
        load.stop.set()
        events.stop.set()
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)
        publisher.join(timeout=30)
        ensure_postgres()
    assert not thread.is_alive(), "a request hung beyond the client timeout"

    statuses = Counter(status for _, status, _, _, _ in load.answers)
    during_statuses = Counter(s for t, s, _, _, _ in load.answers if down_at <= t <= up_at)
    print(
        f"restart: {len(load.answers)} requests, {dict(statuses)}; while down ({up_at - down_at:.1f} s): "
        f"{dict(during_statuses)}; slowest answer {max(a[2] for a in load.answers) * 1000:.0f} ms"
    )
    assert set(statuses) <= {200, 503}, f"unexpected answers: {statuses}"
    slowest = max(took for _, _, took, _, _ in load.answers)
    assert slowest < ANSWER_BOUND_S, f"an answer took {slowest:.1f} s"
    during = [a for a in load.answers if down_at <= a[0] <= up_at]
    assert during, "no request was sent while PostgreSQL was down"
    # first answered from memory while the log keeps the rows, then refused once the backlog is full
    assert during_statuses[200] > 0 and during_statuses[503] > 0, during_statuses
    for _, status, took, _, detail in load.answers:
        if status == 503:
            assert f"prediction_log_max_pending={MAX_PENDING}" in detail, detail
            assert took < REFUSAL_BOUND_S, f"a 503 took {took:.1f} s"
    after = [a for a in load.answers if a[0] > up_at + RECOVERY_S]
    assert after and all(status == 200 for _, status, _, _, _ in after), "the service did not recover"

    answered = [request_id for _, status, _, request_id, _ in load.answers if status == 200]
    assert len(answered) == len(set(answered))
    deadline = time.monotonic() + 30
    logged = _logged(postgres_url)
    while not set(answered) <= set(logged) and time.monotonic() < deadline:
        time.sleep(0.5)
        logged = _logged(postgres_url)
    missing = set(answered) - set(logged)
    assert not missing, f"{len(missing)} answered requests have no log row"
    twice = {r: n for r, n in logged.items() if n > 1}  # the bridge's rows included
    assert not twice, f"log rows written twice: {twice}"
    http_logged = {r for r in logged if not r.startswith("evt-")}  # evt-: the bridge's (checked below)
    assert http_logged <= set(answered), "a refused (503) request was logged"

    _assert_each_event_once(bridge_on_postgres, events, postgres_url, during=(down_at, up_at))


def _wait_consuming(bridge: Bridge, timeout_s: float = 180.0) -> None:
    """Until the bridge process has loaded its models and consumes (it prints "consuming ...")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert bridge.process.poll() is None, bridge.log_path.read_text()[-2000:]
        if b"consuming " in bridge.log_path.read_bytes():
            return
        time.sleep(0.5)
    raise AssertionError(f"the bridge did not start consuming: {bridge.log_path.read_text()[-2000:]}")


def _assert_each_event_once(
    bridge: Bridge, events: Events, postgres_url: str, during: tuple[float, float]
) -> None:
    """Every event published (before, during and after the outage): one ledger row, one log row, a write-back,
    no dead letter; the bridge is still running (it held its events, it did not give up or crash)."""
    written = events.writebacks(timeout_s=60)
    assert bridge.process.poll() is None, f"the bridge exited: {bridge.log_path.read_text()[-2000:]}"
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            ledger = Counter(
                e
                for (e,) in connection.execute(
                    text("SELECT event_id FROM bridge_events WHERE event_id LIKE :t"),
                    {"t": f"{events.tag}-%"},
                )
            )
            dead = connection.scalar(text("SELECT count(*) FROM bridge_dead_letters"))
        logged = _logged(postgres_url)
    finally:
        engine.dispose()
    sent = events.sent
    held = bridge.log_path.read_text().count("platform database unavailable")
    print(
        f"bridge: {len(sent)} events published, {len(ledger)} in the ledger, {sum(written.values())} write-backs "
        f"({sum(1 for n in written.values() if n > 1)} repeated), {dead} dead letters; held its group {held} times "
        f"during the {during[1] - during[0]:.1f} s outage"
    )
    assert len(sent) > 100 and held > 0, "the outage did not reach the bridge"
    assert not dead, "an event was dead-lettered instead of held through the outage"
    assert set(ledger) == set(sent) and set(ledger.values()) == {1}
    missing_writebacks = [e for e in sent if written[e] == 0]
    assert not missing_writebacks, f"{len(missing_writebacks)} events without a write-back"
    requests = [fixed_ids(e, "failure").request_id for e in sent]
    assert all(logged[r] == 1 for r in requests), "an event's prediction is missing or logged twice"
