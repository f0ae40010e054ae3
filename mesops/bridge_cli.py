"""`mesops bridge`: consume MES events (RabbitMQ or MQTT) and publish recommendations back (serving/bridge.py)."""

from __future__ import annotations

import signal
from enum import StrEnum
from typing import Annotated, NoReturn

import pika
import pika.exceptions
import typer
from rich.console import Console

from mesops import database
from mesops.settings import Settings, disable_telemetry, get_settings
from serving.bridge import AmqpBridge, BrokerUnavailableError, EventProcessor, MqttBridge
from serving.runtime import ServingRuntime

console = Console()
err_console = Console(stderr=True)


class Transport(StrEnum):
    """Where MES events come from."""

    AMQP = "amqp"
    MQTT = "mqtt"


def bridge(
    transport: Annotated[
        Transport, typer.Option(help="amqp: RabbitMQ (MESOPS_BRIDGE_AMQP_URL); mqtt: Mosquitto.")
    ] = Transport.AMQP,
    amqp_url: Annotated[
        str | None, typer.Option(help="RabbitMQ URL (default: MESOPS_BRIDGE_AMQP_URL).", show_default=False)
    ] = None,
) -> None:
    """Consume Opcenter and Plex events, answer them like the service, publish write-backs; Ctrl-C stops."""
    disable_telemetry()
    settings = get_settings()
    if amqp_url:
        settings = settings.model_copy(update={"bridge_amqp_url": amqp_url})
    try:
        database.upgrade(settings.resolved_database_url)
    except database.DatabaseError as err:
        _fail(str(err))
    runtime = ServingRuntime(settings)
    with console.status("Loading champions, challengers and the feature context..."):
        runtime.start()
    if not runtime.ready:
        runtime.close()
        _fail("not every model has a champion loaded: run `mesops train` (and promote) first")
    processor = EventProcessor(runtime, settings.bridge_commit_timeout_s)
    consumer = (
        AmqpBridge(settings, processor) if transport == Transport.AMQP else MqttBridge(settings, processor)
    )
    try:
        consumer.connect()
    except (pika.exceptions.AMQPError, OSError) as err:
        runtime.close()
        _fail(f"cannot connect to {_where(settings, transport)}: {type(err).__name__} {err or '(refused)'}")
    signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
    console.print(f"consuming {_where(settings, transport)}; Ctrl-C stops", soft_wrap=True)
    gave_up: BrokerUnavailableError | None = None
    try:
        consumer.run()
    except KeyboardInterrupt:
        pass
    except BrokerUnavailableError as err:  # no broker for longer than the reconnect timeout
        gave_up = err
    finally:
        consumer.close()
        runtime.close()
    console.print(" ".join(f"{k} {v}" for k, v in consumer.counts.items()))
    if gave_up is not None:
        _fail(str(gave_up))


def _fail(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(2)


def _where(settings: Settings, transport: Transport) -> str:
    """Broker and names, without the password."""
    if transport == Transport.MQTT:
        return (
            f"mqtt://{settings.bridge_mqtt_host}:{settings.bridge_mqtt_port} topic {settings.bridge_mqtt_topic} "
            f"(write-backs {settings.bridge_mqtt_writeback_prefix}/…, dead letters "
            f"{settings.bridge_mqtt_dead_letter_topic})"
        )
    params = pika.URLParameters(settings.bridge_amqp_url)
    return (
        f"amqp://{params.host}:{params.port}{params.virtual_host} queue {settings.bridge_events_queue} "
        f"(write-backs {settings.bridge_writeback_exchange}, dead letters {settings.bridge_dead_letter_queue})"
    )
