"""The MQTT bridge under faults, against the machine's real Mosquitto (stopped and started by these tests):

- Mosquitto stopped (SIGTERM) and started again mid-stream, while the bridge holds an event whose prediction is
  committed and whose write-back is not yet published;
- the bridge dying between commit and acknowledgement, and a new bridge with the same client id taking over;
- Mosquitto killed (SIGKILL): what its persistence keeps and what it loses.

Every test leaves Mosquitto running, whatever happened, and drops the persistent sessions it created.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from mesops.bridge_tables import DeadLetter, ProcessedEvent
from mesops.serving_tables import PredictionLogEntry, Recommendation
from mesops.settings import Settings
from serving.bridge import MqttBridge
from serving.event_processor import EventProcessor, fixed_ids
from tests.serving.test_bridge_amqp import Plant, _count, _event, _released, plant  # noqa: F401  (the fixture)
from tests.serving.test_bridge_mqtt import _mosquitto_up, ensure_mosquitto

pytestmark = pytest.mark.slow
MOSQUITTO_CONF = Path("/etc/mosquitto/mosquitto.conf")
EVENTS = 40  # per stream: enough for the fault to land mid-stream, few enough to stay well under a minute
OUTAGE_S = 1.0  # how long Mosquitto stays down in the restart test


# --- Mosquitto, the machine's broker ---------------------------------------------------------------------------


def _conf(key: str) -> str | None:
    """A setting of the machine's mosquitto.conf (the last one wins, as in Mosquitto)."""
    found = None
    for line in MOSQUITTO_CONF.read_text().splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] == key:
            found = parts[1].strip()
    return found


def _persistence_file() -> Path:
    location = _conf("persistence_location") or "/var/lib/mosquitto/"
    return Path(location) / (_conf("persistence_file") or "mosquitto.db")


def _mosquitto_pid() -> int:
    """The pid of the running Mosquitto, from the pid file its configuration names."""
    pid_file = _conf("pid_file")
    assert pid_file, f"{MOSQUITTO_CONF} names no pid_file: cannot find the broker to stop it"
    pid = int(Path(pid_file).read_text().strip())
    assert b"mosquitto" in Path(f"/proc/{pid}/cmdline").read_bytes(), f"pid {pid} is not Mosquitto"
    return pid


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def stop_mosquitto(sig: signal.Signals) -> None:
    """Stop the machine's Mosquitto with ``sig`` (SIGTERM saves its persistence file; SIGKILL does not)."""
    pid = _mosquitto_pid()
    os.kill(pid, sig)
    _wait(lambda: not _alive(pid) and not _mosquitto_up(), 20, "Mosquitto stopped")


def _save_mosquitto() -> None:
    """Have Mosquitto write its persistence file now (SIGUSR1): after a crash it restarts from that, and would
    otherwise bring back sessions dropped since its last save."""
    before = _saved_at()
    os.kill(_mosquitto_pid(), signal.SIGUSR1)
    _wait(lambda: _saved_at() != before, 10, "Mosquitto saved its persistence file")


def _saved_at() -> float | None:
    """When Mosquitto last wrote its persistence file (None: never)."""
    try:
        return _persistence_file().stat().st_mtime
    except FileNotFoundError:
        return None


def _drop_sessions(*client_ids: str) -> None:
    """Remove the persistent sessions of ``client_ids`` from the broker (a clean-session connect replaces one)."""
    for client_id in client_ids:
        cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        cleaner.connect("127.0.0.1", 1883)
        cleaner.disconnect()


# --- the test's side of MQTT ------------------------------------------------------------------------------------


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``condition`` held; AssertionError naming ``what`` after ``timeout_s``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what}: not reached within {timeout_s:g} s")
        time.sleep(0.05)
    return time.monotonic() - start


def _client(client_id: str) -> mqtt.Client:
    """A client with a persistent session that reconnects quickly after a broker restart."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    return client


class Publisher:
    """The MES: publishes events with QoS 1 from its own persistent session, paced, in a thread.

    paho keeps every event the broker has not PUBACKed and sends it again (DUP) when it reconnects; an event
    whose PUBACK was lost with the broker can therefore reach the bridge twice.
    """

    def __init__(self, client_id: str) -> None:
        self.expected = 0
        self.offline = 0  # events published while the broker was away (paho sends them once reconnected)
        self.mids: list[int] = []
        self.acked: set[int] = set()
        self._lock = threading.Lock()
        connected = threading.Event()
        self.client = _client(client_id)
        self.client.on_connect = lambda *_: connected.set()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert connected.wait(10), "publisher not connected"

    def send(self, events: dict[str, tuple[str, bytes, str]], pause_s: float = 0.05) -> None:
        """Publish ``events`` in order from a thread, ``pause_s`` apart."""
        self.expected += len(events)
        threading.Thread(target=self._run, args=(list(events.values()), pause_s), daemon=True).start()

    def _run(self, events: list[tuple[str, bytes, str]], pause_s: float) -> None:
        for topic, body, _ in events:
            info = self.client.publish(topic, body, qos=1)  # queued by paho even while the broker is away
            with self._lock:
                self.mids.append(info.mid)
                self.offline += info.rc == mqtt.MQTT_ERR_NO_CONN
            time.sleep(pause_s)

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _props: Any) -> None:
        with self._lock:
            self.acked.add(mid)

    def all_acked(self) -> bool:
        with self._lock:
            return len(self.mids) == self.expected and self.acked.issuperset(self.mids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Collector:
    """The MES's write-back adapter: a persistent session subscribed to write-backs and dead letters (QoS 1)."""

    def __init__(self, client_id: str, settings: Settings) -> None:
        self.writebacks: list[tuple[str, bytes]] = []  # (event id, body) in arrival order
        self.dead: list[dict[str, Any]] = []
        self.redelivered = 0  # PUBLISH packets the broker sent this session again (DUP flag)
        self.subscriptions = 0  # SUBACKs: one per (re)connection
        self._dead_topic = settings.bridge_mqtt_dead_letter_topic
        self._lock = threading.Lock()
        topics = [(f"{settings.bridge_mqtt_writeback_prefix}/#", 1), (self._dead_topic, 1)]
        self.client = _client(client_id)
        self.client.on_connect = lambda c, *_: c.subscribe(topics)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        _wait(lambda: self.subscriptions > 0, 10, "write-back collector subscribed")

    def _on_subscribe(self, *_: Any) -> None:
        with self._lock:
            self.subscriptions += 1

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        body = json.loads(message.payload)
        with self._lock:
            self.redelivered += int(message.dup)
            if message.topic == self._dead_topic:
                self.dead.append(body)
            else:
                self.writebacks.append((body["mesops"]["event_id"], message.payload))

    def event_ids(self) -> set[str]:
        with self._lock:
            return {event_id for event_id, _ in self.writebacks}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Running:
    """An in-process MQTT bridge processing in a thread; records ``session_present`` of each of its connections."""

    def __init__(self, settings: Settings, processor: EventProcessor) -> None:
        self.bridge = MqttBridge(settings, processor)
        self.sessions: list[bool] = []
        on_connect = self.bridge._on_connect

        def recording(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            self.sessions.append(bool(flags.session_present))
            on_connect(client, userdata, flags, reason, props)

        self.bridge._on_connect = recording  # type: ignore[method-assign]
        self.bridge.connect()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.bridge.run()
        except BaseException as err:  # a simulated crash or an unforeseen error: the test reads it
            self.error = err

    def stop(self) -> None:
        self.bridge.stop()
        self.thread.join(timeout=30)
        self.bridge.close()

    def die(self) -> None:
        """End like a killed process: no DISCONNECT, the socket just closes (the session stays with Mosquitto)."""
        client = self.bridge.client
        assert client is not None
        client.loop_stop()
        sock = client.socket()
        if sock is not None:
            sock.close()


# --- the plant and its events -----------------------------------------------------------------------------------


@dataclass
class Site:
    """The trained plant with its own topics and client ids on the shared Mosquitto."""

    plant: Plant
    settings: Settings
    tag: str

    def client_id(self, role: str) -> str:
        return f"{self.tag}-{role}"


@pytest.fixture
def site(plant: Plant) -> Iterator[Site]:  # noqa: F811
    ensure_mosquitto()
    tag = f"mqf-{uuid.uuid4().hex[:8]}"
    settings = plant.settings.model_copy(
        update={
            "bridge_mqtt_topic": f"{tag}/events/#",
            "bridge_mqtt_writeback_prefix": f"{tag}/writeback",
            "bridge_mqtt_dead_letter_topic": f"{tag}/dead",
            "bridge_mqtt_client_id": f"{tag}-bridge",
        }
    )
    try:
        yield Site(plant, settings, tag)
    finally:
        ensure_mosquitto()  # whatever the test did to the broker, leave it running
        _drop_sessions(*(f"{tag}-{role}" for role in ("bridge", "publisher", "collector")))
        _save_mosquitto()


def _stream(site: Site, first: int, n: int) -> dict[str, tuple[str, bytes, str]]:
    """``n`` events from index ``first``: order releases (yield) alternating with machine status (failure)."""
    topic = site.settings.bridge_mqtt_topic.removesuffix("#")
    events: dict[str, tuple[str, bytes, str]] = {}
    for i in range(first, first + n):
        event_id = f"{site.tag}-{i:03d}"
        if i % 2 == 0:
            body = _released(site.plant, "opcenter", f"PO-{event_id}", event_id)
            events[event_id] = (topic + "opcenter/ProductionOrderReleased", body, "yield")
        else:
            machine = site.plant.machines[i % len(site.plant.machines)]
            data = {"workcenterCode": machine, "status": "down", "startTime": "2026-03-02T06:15:00Z"}
            body = _event("plex", "MachineStatusChanged", event_id, data)
            events[event_id] = (topic + "plex/MachineStatusChanged", body, "failure")
    return events


def _ledger(site: Site) -> int:
    return _count(site.plant, ProcessedEvent.event_id, ProcessedEvent.event_id.like(f"{site.tag}-%"))


def _predictions(site: Site, event_id: str, task: str) -> int:
    request_id = fixed_ids(event_id, task).request_id
    return _count(site.plant, PredictionLogEntry.id, PredictionLogEntry.request_id == request_id)


def _assert_each_event_once(site: Site, events: dict[str, tuple[str, bytes, str]]) -> None:
    """One ledger row, one prediction and one recommendation per event; no event dead-lettered."""
    assert _ledger(site) == len(events)
    for event_id, (_, _, task) in events.items():
        request_id = fixed_ids(event_id, task).request_id
        assert _predictions(site, event_id, task) == 1, event_id
        recs = _count(site.plant, Recommendation.recommendation_id, Recommendation.request_id == request_id)
        assert recs == 1, event_id
    dead = _count(site.plant, DeadLetter.id, DeadLetter.event_id.like(f"{site.tag}-%"))
    assert dead == 0, "a valid event was dead-lettered"


def _repeats(collector: Collector) -> tuple[int, bool]:
    """Write-backs received more than once, and whether every repeat is byte for byte the first one."""
    first: dict[str, bytes] = {}
    identical = True
    for event_id, body in collector.writebacks:
        identical &= first.setdefault(event_id, body) == body
    counts = Counter(event_id for event_id, _ in collector.writebacks)
    return sum(c - 1 for c in counts.values()), identical


# --- the tests --------------------------------------------------------------------------------------------------


class Outage:
    """``after_commit`` hook: stops Mosquitto (SIGTERM) once event ``at`` is committed, its write-back not yet
    published nor the event acknowledged, and starts it again ``OUTAGE_S`` later from another thread."""

    def __init__(self, at: str) -> None:
        self.at, self.triggered = at, False
        self.down_s = 0.0  # from the stop signal to Mosquitto accepting connections again
        self.restarted = threading.Event()
        self.error: BaseException | None = None

    def __call__(self, event_id: str) -> None:
        if event_id != self.at or self.triggered:
            return
        self.triggered, self._stopped = True, time.monotonic()
        try:
            stop_mosquitto(signal.SIGTERM)
        finally:  # even if the stop failed: the test must not wait for a restart that never comes
            threading.Thread(target=self._start_later, daemon=True).start()

    def _start_later(self) -> None:
        try:
            time.sleep(OUTAGE_S)  # the outage itself, not a synchronisation
            ensure_mosquitto()
            self.down_s = time.monotonic() - self._stopped
        except BaseException as err:  # the test reads it
            self.error = err
        finally:
            self.restarted.set()


def test_a_mosquitto_restart_mid_stream_loses_no_event_and_scores_none_twice(site: Site) -> None:
    events = _stream(site, 0, EVENTS)
    outage = Outage(at=list(events)[EVENTS // 4])
    collector = Collector(site.client_id("collector"), site.settings)
    running = Running(site.settings, EventProcessor(site.plant.runtime, after_commit=outage))
    publisher = Publisher(site.client_id("publisher"))
    try:
        publisher.send(events, pause_s=0.1)  # 4 s: the outage lands mid-stream for the publisher too
        _wait(outage.restarted.is_set, 60, "Mosquitto stopped and started again")
        restarted = time.monotonic()
        _wait(lambda: _ledger(site) == EVENTS or running.error is not None, 60, "every event in the ledger")
        assert running.error is None, f"the bridge died: {running.error!r} (counts {running.bridge.counts})"
        _wait(publisher.all_acked, 30, "every event PUBACKed to the publisher")
        _wait(lambda: collector.event_ids() >= set(events), 30, "a write-back of every event")
        done_s = time.monotonic() - restarted
        time.sleep(1.0)  # room for a repeated write-back still on its way
    finally:
        running.stop()
        publisher.close()
        collector.close()
    repeats, identical = _repeats(collector)
    print(
        f"\nMosquitto restart: away {outage.down_s:.1f} s; {publisher.offline} events published meanwhile; "
        f"bridge counts {running.bridge.counts}, connections (session present) {running.sessions}; every "
        f"write-back {done_s:.1f} s after Mosquitto was back; write-backs {len(collector.writebacks)} "
        f"({repeats} repeated, {collector.redelivered} redelivered by Mosquitto)"
    )
    assert outage.error is None, outage.error
    assert publisher.offline > 0, "the restart hit the publisher mid-stream too"
    assert running.sessions == [False, True], "one reconnection, to the session Mosquitto kept"
    _assert_each_event_once(site, events)
    assert collector.event_ids() == set(events) and collector.dead == []
    # a repeat is the write-back in flight when Mosquitto stopped (paho sends it again), or one the broker
    # redelivered to the collector; never a different body
    assert identical, "a repeated write-back differs from the first"
    assert repeats <= 1 + collector.redelivered


class Crash(BaseException):
    """The bridge process dying (not an error the bridge handles)."""


def test_a_bridge_dying_between_commit_and_ack_gets_its_events_again_and_scores_each_once(site: Site) -> None:
    events = _stream(site, 0, 12)
    victim = list(events)[4]

    def crash(event_id: str) -> None:
        if event_id == victim:
            raise Crash

    collector = Collector(site.client_id("collector"), site.settings)
    dying = Running(site.settings, EventProcessor(site.plant.runtime, after_commit=crash))
    publisher = Publisher(site.client_id("publisher"))
    try:
        publisher.send(events)
        dying.thread.join(timeout=60)
        dying.die()  # the events it holds unacknowledged stay in its session
        assert isinstance(dying.error, Crash)
        _wait(publisher.all_acked, 30, "every event PUBACKed to the publisher")
        recorded = _ledger(site)  # the events acknowledged before the crash (the victim's group is not)
        _, _, task = events[victim]
        assert _predictions(site, victim, task) == 1  # committed before the crash
        assert _count(site.plant, ProcessedEvent.event_id, ProcessedEvent.event_id == victim) == 0
        assert victim not in collector.event_ids()
        running = Running(site.settings, EventProcessor(site.plant.runtime))  # same client id: same session
        try:
            _wait(lambda: _ledger(site) == len(events), 60, "every event in the ledger")
            _wait(lambda: collector.event_ids() >= set(events), 30, "a write-back of every event")
            time.sleep(1.0)  # room for a repeated write-back still on its way
        finally:
            running.stop()
    finally:
        publisher.close()
        collector.close()
    repeats, identical = _repeats(collector)
    print(
        f"\nbridge crash: the new bridge's counts {running.bridge.counts}, session present {running.sessions}; "
        f"write-backs {len(collector.writebacks)} ({repeats} repeated)"
    )
    assert running.error is None, f"the bridge died: {running.error!r}"
    assert running.sessions == [True], "the new bridge took over the dead one's session"
    assert recorded <= 4 and running.bridge.counts["processed"] == len(events) - recorded
    _assert_each_event_once(site, events)
    assert identical and repeats == collector.redelivered  # the victim had published nothing


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_what_mosquitto_keeps_of_events_waiting_for_the_bridge_when_it_stops(
    site: Site, sig: signal.Signals
) -> None:
    """SIGTERM: Mosquitto saves its sessions (``persistence true``) and delivers everything after the restart.
    SIGKILL: it restarts from its last save, so events it had PUBACKed but not yet delivered are lost; the
    bridge still resubscribes, and processes every later event exactly once."""
    waiting, later = _stream(site, 0, 10), _stream(site, 10, 10)
    stopped = MqttBridge(site.settings, EventProcessor(site.plant.runtime))
    stopped.connect()  # the bridge's session and subscription exist ...
    stopped.close()  # ... and it is away (stopped for maintenance): Mosquitto keeps its events for it
    collector = Collector(site.client_id("collector"), site.settings)
    publisher = Publisher(site.client_id("publisher"))
    saved_before = _saved_at()
    try:
        publisher.send(waiting, pause_s=0)
        _wait(publisher.all_acked, 30, "every waiting event PUBACKed to the publisher")
        subscribed = collector.subscriptions
        stop_mosquitto(sig)
        ensure_mosquitto()
        autosaved = sig == signal.SIGKILL and _saved_at() != saved_before
        _wait(lambda: collector.subscriptions > subscribed, 30, "the collector subscribed again")
        running = Running(site.settings, EventProcessor(site.plant.runtime))
        try:
            publisher.send(later)
            _wait(lambda: collector.event_ids() >= set(later), 60, "a write-back of every later event")
            time.sleep(1.0)  # room for a waiting event still on its way
        finally:
            running.stop()
    finally:
        publisher.close()
        collector.close()
    kept = {e for e in waiting if _count(site.plant, ProcessedEvent.event_id, ProcessedEvent.event_id == e)}
    print(f"\nMosquitto {sig.name}: {len(kept)} of {len(waiting)} waiting events delivered after the restart")
    assert running.error is None, f"the bridge died: {running.error!r}"
    _assert_each_event_once(site, {e: v for e, v in (waiting | later).items() if e in kept or e in later})
    if sig == signal.SIGTERM:
        assert running.sessions == [True] and kept == set(waiting)
    elif not autosaved:  # (an autosave while the test ran would have kept some: nothing more to assert then)
        assert running.sessions == [False] and kept == set(), "Mosquitto lost what it had not saved"
