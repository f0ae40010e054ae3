"""The MES event bridge: events in from RabbitMQ or MQTT, recommendations out as write-backs in the MES's shape.

    mesops bridge                     # RabbitMQ: consumes settings.bridge_events_queue until interrupted
    mesops bridge --transport mqtt    # Mosquitto: subscribes to settings.bridge_mqtt_topic (QoS 1)

The transports here take what the broker has delivered (RabbitMQ holds ``bridge_prefetch`` unacknowledged) in
groups of up to ``bridge_batch_max`` events, hand each group to :class:`~serving.event_processor.EventProcessor`
(validate, deduplicate on the ledger, score, commit, build write-backs) and then, per event in delivery order:
publish its write-backs (persistent, ``message_id`` = event id, publisher confirms / QoS 1 PUBACK), dead-letter
it, or retry it; they mark the published events in the ledger and only then acknowledge the group.

A transient failure (database away, log writer overloaded or not committing in time) is retried after
``bridge_retry_delay_s`` with an attempt counter; after ``bridge_max_attempts`` it is dead-lettered with the
last reason. Dead letters keep the original body in ``bridge_dead_letter_queue`` (reasons in the headers) and
are counted in ``bridge_dead_letters``.

Delivery guarantees: at-least-once in, exactly one prediction and recommendation per event id. A crash after
publishing and before marking the ledger republishes the identical write-back with the same ``message_id``
(the MES side deduplicates on it): at most the events of one group per crashed worker.

Broker restarts and lost connections (RabbitMQ): the consumer reconnects with a doubling pause
(``bridge_reconnect_delay_s`` up to ``bridge_reconnect_delay_max_s``), declares the topology again and goes on.
Events it had not acknowledged are redelivered by RabbitMQ and the ledger makes them idempotent: an event whose
prediction is committed is never scored again, and one whose write-back was published but whose confirm was
lost with the connection is published again from the ledger, identical and with the same ``message_id``.
A consumer of write-backs therefore de-duplicates by ``message_id`` (the ledger still holds exactly one
prediction and one recommendation per event). After ``bridge_reconnect_timeout_s`` without a broker the
consumer gives up with :class:`BrokerUnavailableError` so that its supervisor restarts it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from mesops import database
from mesops.settings import Settings
from serving.event_processor import (
    TRANSIENT,
    DeadLetterError,
    EventProcessor,
    Processed,
    Result,
    envelope_of,
)

log = logging.getLogger("mesops.bridge")
ATTEMPTS_HEADER = "x-mesops-attempts"

# A lost connection or channel: reconnect. Anything else the broker says (a nack, ...) ends the consumer.
CONNECTION_LOST = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ChannelClosed,
    pika.exceptions.ChannelWrongStateError,
)


# The platform database is unreachable (or stopped committing mid-group): nothing about the events themselves.
DATABASE_OUTAGE = (OperationalError, InterfaceError, database.DatabaseError, TimeoutError)


class BrokerUnavailableError(ConnectionError):
    """The broker stayed unreachable for longer than ``bridge_reconnect_timeout_s``."""


def process_riding_out_outages(
    processor: EventProcessor, bodies: list[bytes], settings: Settings, pause: Callable[[float], bool]
) -> list[Result]:
    """Process a group; while the platform database is away, hold it and try again with a doubling pause.

    An outage (every event of the group failing with a DATABASE_OUTAGE error, e.g. PostgreSQL restarting) says
    nothing about the events, so it does not use up their ``bridge_max_attempts``: the group stays unacknowledged
    and is retried in place (``bridge_reconnect_delay_s`` doubling up to ``bridge_reconnect_delay_max_s``) for
    up to ``bridge_reconnect_timeout_s``; then, or when ``pause`` returns False (stopping), the results go back
    to the caller as transient failures. ``pause(seconds)`` waits while keeping the broker connection alive.
    """
    delay, since = settings.bridge_reconnect_delay_s, time.monotonic()
    while True:
        results = processor.process_many(bodies)
        outage = [r for r in results if isinstance(r, DATABASE_OUTAGE)]
        if not outage or len(outage) < len(results):
            return results
        if time.monotonic() - since >= settings.bridge_reconnect_timeout_s:
            return results
        log.warning(
            "platform database unavailable (%s: %s): holding %d events, trying again in %.1f s",
            type(outage[0]).__name__,
            str(outage[0]).splitlines()[0] if str(outage[0]) else "",
            len(bodies),
            delay,
        )
        if not pause(delay):
            return results
        delay = min(delay * 2, settings.bridge_reconnect_delay_max_s)


def retry_reason(err: Exception, attempts: int | None = None) -> str:
    """Why an event is retried (or, with ``attempts``, why it was given up on)."""
    reason = f"{'transient' if isinstance(err, TRANSIENT) else 'error'}: {type(err).__name__}: {err}"
    return reason if attempts is None else f"{reason} (gave up after {attempts} attempts)"


def short_string(value: str | None) -> str | None:
    """``value`` as an AMQP short string (at most 255 bytes): a longer one is replaced by its digest, since the
    id of a bad event is unvalidated text and pika refuses to publish a longer one."""
    if value is None or len(value.encode()) <= 255:
        return value
    return f"sha256:{hashlib.sha256(value.encode()).hexdigest()}"


def mark_published(processor: EventProcessor, done: list[Processed]) -> None:
    """Record in the ledger that these write-backs are confirmed; the group is acknowledged either way (a
    missed mark only means a later redelivery would republish the same message ids)."""
    try:
        processor.mark_published([d.event_id for d in done if d.writebacks])
    except SQLAlchemyError as err:
        log.warning("published write-backs not marked in the ledger (database away): %s", err)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event as RabbitMQ delivered it."""

    tag: int
    properties: pika.BasicProperties
    body: bytes

    @property
    def attempts(self) -> int:
        """This try's number: 1, or one more than the requeued copy's counter."""
        return int((self.properties.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1


@dataclass
class AmqpBridge:
    """The RabbitMQ consumer: topology, prefetch, confirms, ack after commit, retries and dead letters."""

    settings: Settings
    processor: EventProcessor
    connection: pika.BlockingConnection | None = None
    channel: BlockingChannel | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"processed": 0, "duplicates": 0, "dead": 0, "retried": 0, "reconnects": 0}
    )
    _stopping: threading.Event = field(default_factory=threading.Event)

    def connect(self) -> None:
        """Connect, turn on publisher confirms and prefetch, and declare the durable topology."""
        s = self.settings
        self.connection = pika.BlockingConnection(pika.URLParameters(s.bridge_amqp_url))
        channel = self.connection.channel()
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=s.bridge_prefetch)
        declare_topology(channel, s)
        self.channel = channel

    def run(self) -> None:
        """Consume until :meth:`stop`, reconnecting whenever the broker connection or channel is lost.

        Raises BrokerUnavailableError once the broker has been unreachable for ``bridge_reconnect_timeout_s``.
        """
        lost_since: float | None = None
        delay = self.settings.bridge_reconnect_delay_s
        while not self._stopping.is_set():
            try:
                if self.channel is None or not self.channel.is_open:
                    self.connect()
                    if lost_since is not None:
                        self.counts["reconnects"] += 1
                        log.warning("bridge reconnected after %.1f s", time.monotonic() - lost_since)
                lost_since, delay = None, self.settings.bridge_reconnect_delay_s
                if self._stopping.is_set():
                    return
                self._consume()
                return  # stop_consuming: asked to stop
            except CONNECTION_LOST as err:
                lost_since = lost_since or time.monotonic()
                delay = self._wait_to_reconnect(err, lost_since, delay)

    def _consume(self) -> None:
        """Take delivered events in groups: the first one, then whatever else arrives within
        ``bridge_batch_wait_s`` of the last, up to ``bridge_batch_max`` (a lone event waits at most that long)."""
        s, channel, connection = self.settings, self.channel, self.connection
        assert channel is not None and connection is not None
        group: list[Delivery] = []
        channel.basic_consume(
            s.bridge_events_queue,
            lambda _ch, method, properties, body: group.append(
                Delivery(method.delivery_tag, properties, body)
            ),
        )
        log.info("bridge consuming %s", s.bridge_events_queue)
        while not self._stopping.is_set():
            connection.process_data_events(time_limit=0.2)  # returns early once something was delivered
            while group and len(group) < s.bridge_batch_max:
                arrived = len(group)
                connection.process_data_events(time_limit=s.bridge_batch_wait_s)
                if len(group) == arrived:
                    break
            if group:
                taken = group[:]
                self._handle(channel, taken)
                del group[
                    : len(taken)
                ]  # events delivered meanwhile (while an outage held it) stay for the next

    def _wait_to_reconnect(self, err: Exception, lost_since: float, delay: float) -> float:
        """Drop the dead connection, pause, and return the next pause (or give up after the timeout)."""
        self._discard()
        s = self.settings
        down_s = time.monotonic() - lost_since
        if down_s >= s.bridge_reconnect_timeout_s:
            raise BrokerUnavailableError(
                f"RabbitMQ unreachable for {down_s:.0f} s (bridge_reconnect_timeout_s "
                f"{s.bridge_reconnect_timeout_s:g}): {type(err).__name__} {err}"
            ) from err
        log.warning("broker connection lost (%s %s): reconnecting in %.1f s", type(err).__name__, err, delay)
        self._stopping.wait(delay)
        return min(delay * 2, s.bridge_reconnect_delay_max_s)

    def _discard(self) -> None:
        """Forget a broken connection; RabbitMQ requeues whatever it had not seen acknowledged."""
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):  # half-dead already: nothing to hand back
                connection.close()

    def stop(self) -> None:
        """Stop consuming from another thread; the group being processed is finished first."""
        self._stopping.set()

    def close(self) -> None:
        """Close the connection; unacknowledged events go back to the queue."""
        self._discard()

    def _handle(self, channel: BlockingChannel, group: list[Delivery]) -> None:
        """Process a group, then per event publish / dead-letter / requeue, mark the ledger, ack the group."""
        results = process_riding_out_outages(
            self.processor, [d.body for d in group], self.settings, self._pause
        )
        published: list[Processed] = []
        paused = False
        for delivery, result in zip(group, results, strict=True):
            if isinstance(result, Processed):
                self._publish(channel, result)
                published.append(result)
                self.counts["duplicates" if result.duplicate else "processed"] += 1
            elif isinstance(result, DeadLetterError):
                self._dead_letter(channel, delivery, result.reasons, result.event)
            elif delivery.attempts >= self.settings.bridge_max_attempts:
                reasons = [retry_reason(result, delivery.attempts)]
                self._dead_letter(channel, delivery, reasons, envelope_of(delivery.body))
            else:
                self._log_retry(result, delivery.attempts)
                if not paused:  # one pause per group, not per event
                    time.sleep(self.settings.bridge_retry_delay_s)
                    paused = True
                self._requeue(channel, delivery)
        mark_published(self.processor, published)
        # only here: every event of the group committed and published, dead-lettered or requeued
        channel.basic_ack(group[-1].tag, multiple=True)

    def _pause(self, seconds: float) -> bool:
        """Wait while answering the broker's heartbeats; False when asked to stop."""
        assert self.connection is not None
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < deadline:
            self.connection.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return not self._stopping.is_set()

    def _log_retry(self, err: Exception, attempts: int) -> None:
        if not isinstance(err, TRANSIENT):
            log.error("event failed unexpectedly (attempt %d)", attempts, exc_info=err)
        limit = self.settings.bridge_max_attempts
        log.warning("event retried (attempt %d of %d): %s", attempts, limit, retry_reason(err))

    def _publish(self, channel: BlockingChannel, done: Processed) -> None:
        for index, built in enumerate(done.writebacks):
            message_id = done.event_id if index == 0 else f"{done.event_id}#{index}"
            channel.basic_publish(
                self.settings.bridge_writeback_exchange,
                built.routing_key,
                json.dumps(built.body).encode(),
                pika.BasicProperties(
                    message_id=message_id,
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    type=built.kind,
                    headers={"x-mesops-event-id": done.event_id, "x-mesops-source": built.source},
                ),
            )  # with confirms on, returns once the broker has the message (raises if it refuses it)

    def _requeue(self, channel: BlockingChannel, delivery: Delivery) -> None:
        properties = delivery.properties
        headers = {**(properties.headers or {}), ATTEMPTS_HEADER: delivery.attempts}
        channel.basic_publish(
            "",
            self.settings.bridge_events_queue,
            delivery.body,
            pika.BasicProperties(
                message_id=properties.message_id,
                content_type=properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                headers=headers,
            ),
        )
        self.counts["retried"] += 1

    def _dead_letter(
        self, channel: BlockingChannel, delivery: Delivery, reasons: list[str], event: dict[str, Any]
    ) -> None:
        row = self.processor.record_dead_letter("amqp", delivery.body, reasons, delivery.attempts, event)
        log.warning("event %s dead-lettered: %s", event.get("event_id", "(no id)"), "; ".join(reasons))
        channel.basic_publish(
            self.settings.bridge_dead_letter_exchange,
            self.settings.bridge_dead_letter_queue,
            delivery.body,
            pika.BasicProperties(
                message_id=short_string(delivery.properties.message_id or event.get("event_id")),
                content_type=delivery.properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                headers={
                    "x-mesops-reasons": json.dumps(reasons),
                    ATTEMPTS_HEADER: delivery.attempts,
                    "x-mesops-dead-letter-id": row if row is not None else "not-counted",
                },
            ),
        )
        self.counts["dead"] += 1


def declare_topology(channel: BlockingChannel, settings: Settings) -> None:
    """The durable exchanges and queues of the bridge (idempotent: safe on every start)."""
    channel.exchange_declare(settings.bridge_events_exchange, "topic", durable=True)
    channel.queue_declare(settings.bridge_events_queue, durable=True)
    channel.queue_bind(settings.bridge_events_queue, settings.bridge_events_exchange, "#")
    channel.exchange_declare(settings.bridge_writeback_exchange, "topic", durable=True)
    channel.queue_declare(settings.bridge_writeback_queue, durable=True)
    channel.queue_bind(settings.bridge_writeback_queue, settings.bridge_writeback_exchange, "#")
    channel.exchange_declare(settings.bridge_dead_letter_exchange, "direct", durable=True)
    channel.queue_declare(settings.bridge_dead_letter_queue, durable=True)
    channel.queue_bind(
        settings.bridge_dead_letter_queue,
        settings.bridge_dead_letter_exchange,
        settings.bridge_dead_letter_queue,
    )


def delete_topology(channel: BlockingChannel, settings: Settings) -> None:
    """Remove the bridge's queues and exchanges (with whatever they hold): for throw-away topologies of tests and
    benchmarks, never a plant's."""
    for queue_name in (
        settings.bridge_events_queue,
        settings.bridge_writeback_queue,
        settings.bridge_dead_letter_queue,
    ):
        channel.queue_delete(queue_name)
    for exchange in (
        settings.bridge_events_exchange,
        settings.bridge_writeback_exchange,
        settings.bridge_dead_letter_exchange,
    ):
        channel.exchange_delete(exchange)


def topology_environment(prefix: str) -> dict[str, str]:
    """MESOPS_BRIDGE_* variables naming a topology of its own under ``prefix`` (``<prefix>.events``, ...), so a
    test or benchmark run shares the broker with others without sharing their queues."""
    names = {
        "EVENTS_EXCHANGE": "events",
        "EVENTS_QUEUE": "events.in",
        "WRITEBACK_EXCHANGE": "writeback",
        "WRITEBACK_QUEUE": "writeback.out",
        "DEAD_LETTER_EXCHANGE": "dead",
        "DEAD_LETTER_QUEUE": "dead",
    }
    return {f"MESOPS_BRIDGE_{key}": f"{prefix}.{value}" for key, value in names.items()}


@dataclass
class MqttBridge:
    """The MQTT (Mosquitto) consumer: QoS 1 in a persistent session, acknowledged only after commit and publish.

    paho's network thread only queues each message; one worker (the caller of :meth:`run`) takes them in groups
    (what is queued, up to ``bridge_batch_max``), publishes the write-backs with QoS 1 and waits for the broker's
    PUBACKs before acknowledging the group's events, in the order they arrived. MQTT has no requeue: a transient
    failure is retried in place, ``bridge_max_attempts`` times, then dead-lettered. Unacknowledged events are
    redelivered by Mosquitto when the bridge reconnects.
    """

    settings: Settings
    processor: EventProcessor
    client: mqtt.Client | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"processed": 0, "duplicates": 0, "dead": 0, "retried": 0}
    )
    _inbox: queue.Queue[tuple[int, mqtt.MQTTMessage]] = field(default_factory=queue.Queue)
    _connected: threading.Event = field(default_factory=threading.Event)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _connection: int = 0  # successful connections so far: an event is acknowledged on the one it came by
    _pubacks: set[int] = field(default_factory=set)  # mids of our publishes the broker has acknowledged
    _puback: threading.Condition = field(default_factory=threading.Condition)

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect with a persistent session and subscribe to the event topics with QoS 1; returns once subscribed."""
        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.bridge_mqtt_client_id,
            clean_session=False,
            manual_ack=True,
        )
        client.reconnect_delay_set(s.bridge_reconnect_delay_s, s.bridge_reconnect_delay_max_s)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = lambda _c, _u, message: self._inbox.put((self._connection, message))
        client.connect(s.bridge_mqtt_host, s.bridge_mqtt_port, keepalive=30)
        client.loop_start()
        self.client = client
        if not self._connected.wait(timeout_s):
            self.close()
            raise ConnectionError(
                f"MQTT broker {s.bridge_mqtt_host}:{s.bridge_mqtt_port} did not accept within {timeout_s} s"
            )

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused: %s", reason)
            return
        self._connection += 1
        client.subscribe(self.settings.bridge_mqtt_topic, qos=1)  # again on every reconnect

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, codes: Any, _props: Any) -> None:
        # Ready only once the broker acknowledged the subscription (SUBACK): an event published before that
        # reaches no session of ours, so connect() must not return earlier.
        if any(code.is_failure for code in codes):
            log.error("MQTT subscription refused: %s", codes)
            return
        self._connected.set()

    def run(self) -> None:
        """Process queued events until :meth:`stop`."""
        if self.client is None:
            self.connect()
        while not self._stopping.is_set():
            try:
                group = [self._inbox.get(timeout=0.2)]
            except queue.Empty:
                continue
            with contextlib.suppress(queue.Empty):
                while len(group) < self.settings.bridge_batch_max:
                    group.append(self._inbox.get(timeout=self.settings.bridge_batch_wait_s))
            self._handle(group)

    def stop(self) -> None:
        """Stop after the group being processed."""
        self._stopping.set()

    def close(self) -> None:
        """Disconnect; unacknowledged events stay in the session for the next connection."""
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _handle(self, group: list[tuple[int, mqtt.MQTTMessage]]) -> None:
        """Process the group, retrying its transient failures in place (bounded), then acknowledge it in order.

        An event delivered over an earlier connection is processed but not acknowledged: its mid means nothing
        to this connection (it could acknowledge another event), and Mosquitto redelivers it on this one if it
        kept the session (a ledger duplicate then).
        """
        assert self.client is not None
        waiting, published = [message for _, message in group], []
        for attempt in range(1, self.settings.bridge_max_attempts + 1):
            results = process_riding_out_outages(
                self.processor,
                [m.payload for m in waiting],
                self.settings,
                lambda seconds: not self._stopping.wait(seconds),
            )
            retry = []
            for message, result in zip(waiting, results, strict=True):
                outcome = self._settle(message, self._published(result), attempt)
                if isinstance(outcome, Processed):
                    published.append(outcome)
                elif outcome is not None:
                    retry.append(message)
            waiting = retry
            if not waiting:
                break
            self.counts["retried"] += len(waiting)
            time.sleep(self.settings.bridge_retry_delay_s)
        mark_published(self.processor, published)
        for connection, message in group:  # only here: after commit and PUBACK (or dead letter)
            if connection == self._connection:
                self.client.ack(message.mid, message.qos)

    def _published(self, result: Result) -> Result:
        """Publish a processed event's write-backs; a broker that does not confirm makes it a retry."""
        if isinstance(result, Processed):
            try:
                self._publish(result)
            except TimeoutError as err:
                return err
        return result

    def _settle(self, message: mqtt.MQTTMessage, result: Result, attempt: int) -> Result | None:
        """Count a processed event, dead-letter a bad or given-up one (None); a retry is returned as is."""
        if isinstance(result, Processed):
            self.counts["duplicates" if result.duplicate else "processed"] += 1
            return result
        if isinstance(result, DeadLetterError):
            self._dead_letter(message, result.reasons, attempt, result.event)
            return None
        if attempt == self.settings.bridge_max_attempts:
            reasons = [retry_reason(result, attempt)]
            self._dead_letter(message, reasons, attempt, envelope_of(message.payload))
            return None
        log.warning("MQTT event retried (attempt %d): %s", attempt, retry_reason(result))
        return result

    def _publish(self, done: Processed) -> None:
        prefix = self.settings.bridge_mqtt_writeback_prefix
        for built in done.writebacks:
            topic = f"{prefix}/{built.source}/{built.kind}"
            self._send(topic, json.dumps(built.body), f"the write-back of event {done.event_id}")

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        with self._puback:
            self._pubacks.add(mid)
            self._puback.notify_all()

    def _send(self, topic: str, payload: str, what: str) -> None:
        """Publish with QoS 1 and wait for the broker's PUBACK, across reconnections.

        paho keeps a QoS 1 message it could not send (or whose PUBACK the lost connection took) and sends it
        again once reconnected: a broker restart delays the PUBACK, it does not fail the event (a retry would
        only publish another copy). No broker for ``bridge_reconnect_timeout_s``: BrokerUnavailableError.
        """
        assert self.client is not None
        info = self.client.publish(topic, payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise TimeoutError(f"MQTT client queue full: {what} not sent")
        timeout_s = self.settings.bridge_reconnect_timeout_s
        with self._puback:
            if not self._puback.wait_for(lambda: info.mid in self._pubacks, timeout_s):
                raise BrokerUnavailableError(
                    f"MQTT broker did not acknowledge {what} within {timeout_s:g} s (bridge_reconnect_timeout_s)"
                )
            self._pubacks.discard(info.mid)

    def _dead_letter(
        self, message: mqtt.MQTTMessage, reasons: list[str], attempts: int, event: dict[str, Any]
    ) -> None:
        assert self.client is not None
        row = self.processor.record_dead_letter("mqtt", message.payload, reasons, attempts, event)
        log.warning("MQTT event %s dead-lettered: %s", event.get("event_id", "(no id)"), "; ".join(reasons))
        letter = {
            "reasons": reasons,
            "attempts": attempts,
            "dead_letter_id": row,
            "topic": message.topic,
            "event_id": event.get("event_id"),
            "body_base64": base64.b64encode(message.payload).decode(),
        }
        self._send(self.settings.bridge_mqtt_dead_letter_topic, json.dumps(letter), "a dead letter")
        self.counts["dead"] += 1
