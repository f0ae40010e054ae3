"""`mesops bridge`: consume MES events (RabbitMQ or MQTT) and publish recommendations back (serving/bridge.py);
`mesops bridge dead-letters`: list the events it could not process, with their reasons."""

from __future__ import annotations

import signal
from collections import Counter
from enum import StrEnum
from typing import Annotated, NoReturn

import pika
import pika.exceptions
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from mesops import database
from mesops.bridge_tables import DeadLetter
from mesops.settings import Settings, disable_telemetry, get_settings
from serving.bridge import AmqpBridge, BrokerUnavailableError, MqttBridge
from serving.event_processor import EventProcessor
from serving.runtime import ServingRuntime

console = Console()
err_console = Console(stderr=True)


DEFAULT_LIMIT = 50  # dead letters listed when --limit is not given


class Transport(StrEnum):
    """Where MES events come from."""

    AMQP = "amqp"
    MQTT = "mqtt"


class View(StrEnum):
    """What `mesops bridge` shows instead of consuming."""

    DEAD_LETTERS = "dead-letters"


def bridge(
    view: Annotated[
        View | None,
        typer.Argument(
            help="dead-letters: list the dead letters (newest first) and their counts by reason, instead of "
            "consuming.",
            show_default=False,
        ),
    ] = None,
    transport: Annotated[
        Transport | None,
        typer.Option(help="amqp: RabbitMQ (MESOPS_BRIDGE_AMQP_URL, the default); mqtt: Mosquitto."),
    ] = None,
    amqp_url: Annotated[
        str | None, typer.Option(help="RabbitMQ URL (default: MESOPS_BRIDGE_AMQP_URL).", show_default=False)
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, help=f"dead-letters: list at most N (default {DEFAULT_LIMIT}).", show_default=False
        ),
    ] = None,
    reason_contains: Annotated[
        str | None,
        typer.Option(
            help="dead-letters: only those with a reason containing TEXT (any case).", show_default=False
        ),
    ] = None,
) -> None:
    """Consume Opcenter and Plex events, answer them like the service, publish write-backs; Ctrl-C stops.

    `mesops bridge dead-letters [--limit N] [--reason-contains TEXT]` lists the events it dead-lettered.
    """
    if view == View.DEAD_LETTERS:
        if transport is not None or amqp_url is not None:
            _fail(
                "--transport and --amqp-url are for consuming; `mesops bridge dead-letters` reads the database"
            )
        dead_letters(limit or DEFAULT_LIMIT, reason_contains)
        return
    if limit is not None or reason_contains is not None:
        _fail("--limit and --reason-contains belong to `mesops bridge dead-letters`")
    consume(transport or Transport.AMQP, amqp_url)


def consume(transport: Transport, amqp_url: str | None) -> None:
    """Run the bridge until Ctrl-C or SIGTERM (exit 2 when it cannot start or the broker stays away)."""
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


def dead_letters(limit: int, reason_contains: str | None) -> None:
    """Print the newest ``limit`` dead letters (matching ``reason_contains``) and counts by reason of them all."""
    settings = get_settings()
    try:
        database.upgrade(settings.resolved_database_url)
        rows = _dead_letter_rows(settings.resolved_database_url, reason_contains)
    except database.DatabaseError as err:
        _fail(str(err))
    which = f" with a reason containing {reason_contains!r}" if reason_contains else ""
    if not rows:
        console.print(f"no dead letters{which}")
        return
    table = Table(
        "id",
        "received_at",
        "transport",
        "source",
        "event_type",
        "event_id",
        "attempts",
        "reasons",
        "body bytes",
        title=f"dead letters{which}: newest {min(limit, len(rows))} of {len(rows)}",
    )
    for row in rows[:limit]:
        table.add_row(
            str(row.id),
            row.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.transport,
            row.source or "-",
            row.event_type or "-",
            row.event_id or "-",
            str(row.attempts),
            "\n".join(row.reasons),
            str(row.body_bytes),
        )
    console.print(table)
    counts = Table(
        "reason (field: rule)", "dead letters", title=f"by reason ({len(rows)} dead letter(s){which})"
    )
    for reason, count in sorted(_by_reason(rows).items(), key=lambda item: (-item[1], item[0])):
        counts.add_row(reason, str(count))
    console.print(counts)


def _dead_letter_rows(db_url: str, reason_contains: str | None) -> list[DeadLetter]:
    """Every dead letter newest first, those with a reason containing the text when one is given (the reasons
    are a JSON list: matched here, the same way on SQLite and PostgreSQL)."""
    query = select(DeadLetter).order_by(DeadLetter.received_at.desc(), DeadLetter.id.desc())
    with database.session_scope(db_url) as session:
        rows = list(session.scalars(query))
        session.expunge_all()
    if not reason_contains:
        return rows
    wanted = reason_contains.casefold()
    return [r for r in rows if any(wanted in reason.casefold() for reason in r.reasons)]


def reason_key(reason: str) -> str:
    """What a reason is about, without the values it quotes: ``field: rule`` (``data.PlannedQuantity:
    greater_than``, ``transient: LogOverloadedError``), or the field alone when no rule word follows it."""
    field, _, rest = reason.partition(": ")
    rule = rest.partition(": ")[0]
    return f"{field}: {rule}" if rule and " " not in rule else field


def _by_reason(rows: list[DeadLetter]) -> Counter[str]:
    """Dead letters per reason key (a dead letter with two reasons of one key counts once)."""
    return Counter(key for row in rows for key in {reason_key(r) for r in row.reasons})


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
