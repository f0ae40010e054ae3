"""The MES event bridge over the real Mosquitto (MQTT, QoS 1): write-backs, dead letters, replays."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from mesops.bridge_tables import DeadLetter, ProcessedEvent
from mesops.serving_tables import PredictionLogEntry
from serving.bridge import MqttBridge
from serving.event_processor import EventProcessor, fixed_ids
from tests.serving.test_bridge_amqp import AT, Plant, _count, _event, _released, _wait, plant  # noqa: F401  (the shared fixture)

pytestmark = pytest.mark.slow


def _mosquitto_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1):
            return True
    except OSError:
        return False


def ensure_mosquitto() -> None:
    """Start the machine's Mosquitto if it is down (the command the machine documents)."""
    if _mosquitto_up():
        return
    if shutil.which("mosquitto") is None:
        pytest.fail("Mosquitto is down and mosquitto is not installed: cannot start it")
    subprocess.run(["mosquitto", "-d", "-c", "/etc/mosquitto/mosquitto.conf"], check=False)
    for _ in range(40):
        if _mosquitto_up():
            return
        time.sleep(0.25)
    pytest.fail("Mosquitto did not come up on 127.0.0.1:1883 within 10 s")


class Broker:
    """The test's side of MQTT: publishes events, records write-backs and dead letters."""

    def __init__(self, writeback_filter: str, dead_topic: str) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: (c.subscribe([(writeback_filter, 1), (dead_topic, 1)]), None)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert self._ready.wait(10), "test subscriber not subscribed"

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, json.loads(message.payload)))

    def publish(self, topic: str, body: bytes) -> None:
        self.client.publish(topic, body, qos=1).wait_for_publish(10)

    def messages(self, expected: int, timeout_s: float = 60.0) -> list[tuple[str, dict[str, Any]]]:
        """Waits for ``expected`` messages, then a second for any extra one."""
        deadline = time.monotonic() + timeout_s
        while len(self.received) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_plant(plant: Plant) -> Iterator[tuple[Plant, Broker]]:  # noqa: F811
    ensure_mosquitto()
    tag = f"test-{uuid.uuid4().hex[:8]}"
    settings = plant.settings.model_copy(
        update={
            "bridge_mqtt_topic": f"{tag}/events/#",
            "bridge_mqtt_writeback_prefix": f"{tag}/writeback",
            "bridge_mqtt_dead_letter_topic": f"{tag}/dead",
            "bridge_mqtt_client_id": f"{tag}-bridge",
        }
    )
    broker = Broker(f"{tag}/writeback/#", f"{tag}/dead")
    scoped = Plant(settings, plant.runtime, plant.channel, plant.machines, plant.order)
    try:
        yield scoped, broker
    finally:
        broker.close()
        # drop the bridge's persistent session on the shared broker
        cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{tag}-bridge", clean_session=True)
        cleaner.connect("127.0.0.1", 1883)
        cleaner.disconnect()


class Running:
    """An MQTT bridge processing in a thread until stopped."""

    def __init__(self, site: Plant) -> None:
        self.bridge = MqttBridge(site.settings, EventProcessor(site.runtime))
        self.bridge.connect()
        self.thread = threading.Thread(target=self.bridge.run, daemon=True)
        self.thread.start()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.bridge.stop()
        self.thread.join(timeout=30)
        self.bridge.close()


def test_mqtt_events_give_one_write_back_each_dead_letters_and_no_second_on_replay(
    mqtt_plant: tuple[Plant, Broker],
) -> None:
    site, broker = mqtt_plant
    t = uuid.uuid4().hex[:10]
    topic = site.settings.bridge_mqtt_topic.removesuffix("#")
    order = _released(site, "plex", f"J-{t}", f"{t}-job")
    status = _event(
        "opcenter",
        "EquipmentStatusChanged",
        f"{t}-eq",
        {"EquipmentNId": site.machines[0], "State": "down", "StartTime": AT},
    )
    bad = json.loads(_event("plex", "JobClosed", f"{t}-bad", {"jobNo": f"J-{t}", "completeDate": AT}))
    with Running(site) as running:
        broker.publish(topic + "plex/JobReleased", order)
        broker.publish(topic + "opcenter/EquipmentStatusChanged", status)
        broker.publish(topic + "plex/JobClosed", json.dumps(bad).encode())
        broker.publish(topic + "plex/JobReleased", order)  # a replay
        _wait(lambda: sum(running.bridge.counts.values()) == 4)
        received = broker.messages(expected=3)
    assert running.bridge.counts == {"processed": 2, "duplicates": 1, "dead": 1, "retried": 0}
    writebacks = {body["mesops"]["event_id"]: topic for topic, body in received if "mesops" in body}
    assert writebacks == {
        f"{t}-job": f"{site.settings.bridge_mqtt_writeback_prefix}/plex/CustomObjectRecord",
        f"{t}-eq": f"{site.settings.bridge_mqtt_writeback_prefix}/opcenter/DispatchListEntry",
    }
    [letter] = [body for topic, body in received if topic == site.settings.bridge_mqtt_dead_letter_topic]
    assert letter["event_id"] == f"{t}-bad"
    assert letter["reasons"][0].startswith("data.goodQuantity: missing")
    assert json.loads(base64.b64decode(letter["body_base64"]))["event_id"] == f"{t}-bad"  # never lost
    assert _count(site, DeadLetter.id, DeadLetter.event_id == f"{t}-bad", DeadLetter.transport == "mqtt") == 1
    request_id = fixed_ids(f"{t}-job", "yield").request_id
    assert _count(site, PredictionLogEntry.id, PredictionLogEntry.request_id == request_id) == 1
    assert _count(site, ProcessedEvent.event_id, ProcessedEvent.event_id.like(f"{t}-%")) == 2
