"""The MES event bridge: events in from RabbitMQ or MQTT, recommendations out as write-backs in the MES's shape.

    mesops bridge                     # RabbitMQ: consumes settings.bridge_events_queue until interrupted
    mesops bridge --transport mqtt    # Mosquitto: subscribes to settings.bridge_mqtt_topic (QoS 1)

Per event (one at a time per channel; RabbitMQ holds ``bridge_prefetch`` unacknowledged):

1. validate against its contract (serving/events.py); a bad event is dead-lettered with its reasons;
2. look the event id up in the ledger (``bridge_events``): an event already published is acknowledged and
   nothing is published again; one committed but not yet published republishes its stored write-back;
3. score it through the same handlers as the HTTP service (serving/handlers.py), with request and
   recommendation ids derived from the event id, and wait until the prediction log row is committed (a row
   already committed by an earlier delivery is reused, never scored twice);
4. build the write-back from the committed rows, record it in the ledger, publish it (persistent,
   ``message_id`` = event id, publisher confirms), mark it published, and only then acknowledge the event.

A transient failure (database away, log writer overloaded or not committing in time) re-queues the event with
an attempt counter after ``bridge_retry_delay_s``; after ``bridge_max_attempts`` it is dead-lettered with the
last reason. Dead letters keep the original body in ``bridge_dead_letter_queue`` (reasons in the headers) and
are counted in ``bridge_dead_letters``.

Delivery guarantees: at-least-once in, exactly one prediction and recommendation per event id. A crash after
publishing and before marking the ledger republishes the identical write-back with the same ``message_id``
(the MES side deduplicates on it).

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
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from governance import recommendations as recs
from mesops import database
from mesops.bridge_tables import DeadLetter, ProcessedEvent
from mesops.serving_tables import PredictionLogEntry, Recommendation
from mesops.settings import Settings
from serving import handlers, writeback
from serving.context import UnknownEntityError
from serving.events import EventError, MesEvent, parse_event
from serving.prediction_log import LogOverloadedError, LogWriterStateError
from serving.runtime import NotReadyError, ServingRuntime
from serving.schemas import FailureRiskRequest, OutcomeRequest, YieldRequest
from serving.scoring import FeatureError

log = logging.getLogger("mesops.bridge")
ATTEMPTS_HEADER = "x-mesops-attempts"
BRIDGE_KEY_ID = "mes-bridge"  # who posted an outcome that arrived as an event (no person: the integration)
ENDPOINTS = {
    "order_released": "bridge:yield",
    "machine_status": "bridge:failure",
    "sensor_update": "bridge:failure",
}
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


# A lost connection or channel: reconnect. Anything else the broker says (a nack, ...) ends the consumer.
CONNECTION_LOST = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ChannelClosed,
    pika.exceptions.ChannelWrongStateError,
)


class BrokerUnavailableError(ConnectionError):
    """RabbitMQ stayed unreachable for longer than ``bridge_reconnect_timeout_s``."""


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


def fixed_ids(event_id: str, task: str) -> handlers.FixedIds:
    """Request and recommendation ids of an event's prediction: the same on every delivery of the event."""
    digest = hashlib.sha256(f"{event_id}|{task}".encode()).hexdigest()
    return handlers.FixedIds(request_id=f"evt-{digest[:32]}", recommendation_id=f"rec-{digest[32:56]}")


@dataclass
class EventProcessor:
    """Turns one raw event into its committed prediction, outcome and write-backs (transport-independent).

    ``after_commit`` (tests) is called with the event id once its prediction is committed, before anything is
    published or acknowledged.
    """

    runtime: ServingRuntime
    commit_timeout_s: float = 10.0
    after_commit: Callable[[str], None] | None = None

    @property
    def db_url(self) -> str:
        return self.runtime.db_url

    def process(self, body: bytes) -> Processed:
        """Validate and process one event; DeadLetterError for a bad one, TRANSIENT errors propagate."""
        try:
            event = parse_event(body)
        except EventError as err:
            raise DeadLetterError(err.reasons, err.envelope) from None
        meta = {"event_id": event.event_id, "source": event.source, "event_type": event.event_type}
        try:
            return self._process(event)
        except TRANSIENT:
            raise
        except PERMANENT as err:
            raise DeadLetterError([str(err)], meta) from None

    def _process(self, event: MesEvent) -> Processed:
        known = self._ledger(event.event_id)
        if known is not None:
            return self._replay(known)
        if event.kind in ENDPOINTS:
            task = "yield" if event.kind == "order_released" else "failure"
            ids = fixed_ids(event.event_id, task)
            # an earlier delivery may have committed the prediction already: never score twice
            if not handlers.is_logged(self.db_url, ids.request_id):
                self._score(event, task, ids)
                handlers.wait_committed(self.runtime, ids.request_id, self.commit_timeout_s)
            if self.after_commit is not None:
                self.after_commit(event.event_id)
            built = writeback.build(event.source, event.event_id, self._committed(ids.request_id))
            return self._record(event, [ids.request_id], [built], outcome=None)
        if event.kind == "order_closed":
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
            return self._record(event, [], [], outcome=answered.model_dump(mode="json"))
        return self._record(event, [], [], outcome=None)  # operation completed: recorded, no outcome yet

    def _score(self, event: MesEvent, task: str, ids: handlers.FixedIds) -> None:
        endpoint = ENDPOINTS[event.kind]
        if task == "yield":
            assert event.order_id is not None
            request = YieldRequest(order_id=event.order_id, order=event.order)
            handlers.yield_forecast(self.runtime, request, endpoint, ids)
        else:
            assert event.machine_id is not None
            failure = FailureRiskRequest(machine_id=event.machine_id, correlation_id=event.event_id)
            handlers.failure(self.runtime, failure, endpoint, ids)

    def _committed(self, request_id: str) -> writeback.CommittedPrediction:
        """The prediction and recommendation of ``request_id`` as the database holds them."""
        with database.session_scope(self.db_url) as session:
            entry = session.scalars(
                select(PredictionLogEntry).where(PredictionLogEntry.request_id == request_id)
            ).one()
            rec = session.get(Recommendation, entry.recommendation_id)
            if rec is None:
                raise handlers.NotCommittedError(f"recommendation of prediction {request_id} is not stored")
            output = entry.champion_output if entry.answered_by == "champion" else entry.challenger_output
            return writeback.CommittedPrediction(
                request_id=request_id,
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

    def _ledger(self, event_id: str) -> ProcessedEvent | None:
        with database.session_scope(self.db_url) as session:
            return session.get(ProcessedEvent, event_id)

    def _replay(self, known: ProcessedEvent) -> Processed:
        if known.published_at is not None:
            return Processed(known.event_id, [], duplicate=True)
        return Processed(known.event_id, [writeback.WriteBack(**w) for w in known.writebacks])

    def _record(
        self,
        event: MesEvent,
        request_ids: list[str],
        built: list[writeback.WriteBack],
        outcome: dict[str, Any] | None,
    ) -> Processed:
        """Write the ledger row; an event another consumer recorded meanwhile is a duplicate."""
        now = datetime.now(UTC)
        row = ProcessedEvent(
            event_id=event.event_id,
            source=event.source,
            event_type=event.event_type,
            schema_version=event.version,
            request_ids=request_ids,
            writebacks=[b.as_dict() for b in built],
            outcome=outcome,
            processed_at=now,
            published_at=None if built else now,
        )
        try:
            with database.session_scope(self.db_url) as session:
                session.add(row)
        except IntegrityError:
            known = self._ledger(event.event_id)
            if known is None:
                raise
            return self._replay(known)
        return Processed(event.event_id, built)

    def mark_published(self, event_id: str) -> None:
        """Every write-back of the event is confirmed by the broker: a later delivery publishes nothing."""
        with database.session_scope(self.db_url) as session:
            session.execute(
                update(ProcessedEvent)
                .where(ProcessedEvent.event_id == event_id, ProcessedEvent.published_at.is_(None))
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


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _envelope_of(body: bytes) -> dict[str, Any]:
    """event_id, source and event_type of a body, as far as it can be read (for dead-letter headers)."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: raw[k] for k in ("event_id", "source", "event_type") if isinstance(raw.get(k), str)}


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
        assert self.channel is not None
        self.channel.basic_consume(self.settings.bridge_events_queue, self._on_message)
        log.info("bridge consuming %s", self.settings.bridge_events_queue)
        self.channel.start_consuming()

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
        """Stop consuming from another thread; the message being processed is finished first."""
        self._stopping.set()
        connection, channel = self.connection, self.channel
        if connection is not None and channel is not None and connection.is_open:
            connection.add_callback_threadsafe(channel.stop_consuming)

    def close(self) -> None:
        """Close the connection; unacknowledged events go back to the queue."""
        self._discard()

    def _on_message(
        self, channel: BlockingChannel, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        attempts = int((properties.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1
        try:
            done = self.processor.process(body)
        except DeadLetterError as err:
            self._dead_letter(channel, body, properties, err.reasons, attempts, err.event)
        except Exception as err:  # transient (database away, ...) or unforeseen: retried, bounded
            if not isinstance(err, TRANSIENT):
                log.exception("event failed unexpectedly (attempt %d)", attempts)
            reason = f"{'transient' if isinstance(err, TRANSIENT) else 'error'}: {type(err).__name__}: {err}"
            if attempts >= self.settings.bridge_max_attempts:
                reasons = [f"{reason} (gave up after {attempts} attempts)"]
                self._dead_letter(channel, body, properties, reasons, attempts, _envelope_of(body))
            else:
                log.warning(
                    "event retried (attempt %d of %d): %s",
                    attempts,
                    self.settings.bridge_max_attempts,
                    reason,
                )
                time.sleep(self.settings.bridge_retry_delay_s)
                self._requeue(channel, body, properties, attempts)
        else:
            self._publish(channel, done)
            if done.writebacks:
                self.processor.mark_published(done.event_id)
            self.counts["duplicates" if done.duplicate else "processed"] += 1
        channel.basic_ack(
            method.delivery_tag
        )  # only here: after commit, publish and confirm (or dead letter)

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

    def _requeue(
        self, channel: BlockingChannel, body: bytes, properties: pika.BasicProperties, attempts: int
    ) -> None:
        headers = {**(properties.headers or {}), ATTEMPTS_HEADER: attempts}
        channel.basic_publish(
            "",
            self.settings.bridge_events_queue,
            body,
            pika.BasicProperties(
                message_id=properties.message_id,
                content_type=properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                headers=headers,
            ),
        )
        self.counts["retried"] += 1

    def _dead_letter(
        self,
        channel: BlockingChannel,
        body: bytes,
        properties: pika.BasicProperties,
        reasons: list[str],
        attempts: int,
        event: dict[str, Any],
    ) -> None:
        row = self.processor.record_dead_letter("amqp", body, reasons, attempts, event)
        log.warning("event %s dead-lettered: %s", event.get("event_id", "(no id)"), "; ".join(reasons))
        channel.basic_publish(
            self.settings.bridge_dead_letter_exchange,
            self.settings.bridge_dead_letter_queue,
            body,
            pika.BasicProperties(
                message_id=properties.message_id or event.get("event_id"),
                content_type=properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                headers={
                    "x-mesops-reasons": json.dumps(reasons),
                    ATTEMPTS_HEADER: attempts,
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


@dataclass
class MqttBridge:
    """The MQTT (Mosquitto) consumer: QoS 1 in a persistent session, acknowledged only after commit and publish.

    paho's network thread only queues each message; one worker (the caller of :meth:`run`) processes them in
    order, publishes the write-backs with QoS 1 and waits for the broker's PUBACK before acknowledging the event.
    MQTT has no requeue: a transient failure is retried in place, ``bridge_max_attempts`` times, then
    dead-lettered. Unacknowledged events are redelivered by Mosquitto when the bridge reconnects.
    """

    settings: Settings
    processor: EventProcessor
    client: mqtt.Client | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"processed": 0, "duplicates": 0, "dead": 0, "retried": 0}
    )
    _inbox: queue.Queue[mqtt.MQTTMessage] = field(default_factory=queue.Queue)
    _connected: threading.Event = field(default_factory=threading.Event)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect with a persistent session and subscribe to the event topics with QoS 1; returns once subscribed."""
        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.bridge_mqtt_client_id,
            clean_session=False,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = lambda _c, _u, message: self._inbox.put(message)
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
                message = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            self._handle(message)

    def stop(self) -> None:
        """Stop after the event being processed."""
        self._stopping.set()

    def close(self) -> None:
        """Disconnect; unacknowledged events stay in the session for the next connection."""
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        assert self.client is not None
        body, limit = message.payload, self.settings.bridge_max_attempts
        for attempt in range(1, limit + 1):
            try:
                done = self.processor.process(body)
                self._publish(done)
            except DeadLetterError as err:
                self._dead_letter(message, err.reasons, attempt, err.event)
                break
            except (
                Exception
            ) as err:  # transient (database away, ...) or unforeseen: retried in place, bounded
                reason = (
                    f"{'transient' if isinstance(err, TRANSIENT) else 'error'}: {type(err).__name__}: {err}"
                )
                if attempt == limit:
                    reasons = [f"{reason} (gave up after {attempt} attempts)"]
                    self._dead_letter(message, reasons, attempt, _envelope_of(body))
                    break
                log.warning("MQTT event retried (attempt %d of %d): %s", attempt, limit, reason)
                self.counts["retried"] += 1
                time.sleep(self.settings.bridge_retry_delay_s)
            else:
                if done.writebacks:
                    self.processor.mark_published(done.event_id)
                self.counts["duplicates" if done.duplicate else "processed"] += 1
                break
        self.client.ack(message.mid, message.qos)  # only here: after commit and PUBACK (or dead letter)

    def _publish(self, done: Processed) -> None:
        assert self.client is not None
        prefix = self.settings.bridge_mqtt_writeback_prefix
        for built in done.writebacks:
            info = self.client.publish(f"{prefix}/{built.source}/{built.kind}", json.dumps(built.body), qos=1)
            info.wait_for_publish(timeout=self.settings.bridge_commit_timeout_s)
            if not info.is_published():
                raise TimeoutError(f"MQTT broker did not confirm the write-back of event {done.event_id}")

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
        info = self.client.publish(self.settings.bridge_mqtt_dead_letter_topic, json.dumps(letter), qos=1)
        info.wait_for_publish(timeout=self.settings.bridge_commit_timeout_s)
        self.counts["dead"] += 1
