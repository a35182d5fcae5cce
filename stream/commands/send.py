"""`rnnwatch send`: publish events to the service's input topic, from event logs or a seeded synthetic fleet.

For trying the service and for replaying recorded logs into a topic: every event goes out in the wire format
(``{"key", "time", "value" | "values"}``, keyed by its stream), in the logs' time order, at ``--rate`` events/s
(0: as fast as the broker takes them). The topic and the connection settings are `rnnwatch serve`'s own
(``--config``, RNNWATCH_* variables), so what `send` writes is what `serve` reads.
Exit codes: 0 sent, 1 Kafka refused or unreachable, 2 bad input or config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.data.eventlog import EventRecord
    from stream.service.config import ServiceConfig

SEND_WINDOW = 2000  # sends in flight before waiting for their acks: bounded memory, a slow broker slows us


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: where the events come from, where they go, and how fast."""
    from stream.commands.config_flags import CONNECTION, add_config_flags

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--logs", nargs="+", metavar="PATH", help="JSON Lines / CSV event logs or directories")
    source.add_argument(
        "--synthetic", type=int, metavar="STREAMS", help="a seeded synthetic fleet of this many streams"
    )
    parser.add_argument("--synthetic-events", type=int, default=2000, help="--synthetic: events per stream")
    parser.add_argument("--seed", type=int, default=0, help="--synthetic: generator seed")
    add_config_flags(parser, CONNECTION)  # --config, --bootstrap-servers, --security-*: serve's own
    parser.add_argument("--topic", default=None, help="topic to write (default: the service's input_topic)")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second; 0 sends as fast as possible")


def _records(args: argparse.Namespace) -> tuple[list[EventRecord], str]:
    """The events to send and a few words on where they came from."""
    if args.logs:
        from stream.data.eventlog import read_event_logs

        records, summary = read_event_logs(args.logs)
        return records, summary.describe()
    from stream.data.synthetic import generate_fleet

    fleet = generate_fleet(args.synthetic, args.synthetic_events, seed=args.seed)
    return list(fleet.records()), f"synthetic fleet, seed {args.seed}"


async def _send(config: ServiceConfig, topic: str, records: Sequence[EventRecord], rate: float) -> int:
    """Send every record, at most ``SEND_WINDOW`` unacknowledged at a time; returns how many were acked."""
    from aiokafka import AIOKafkaProducer

    from stream.commands.client_start import start_client
    from stream.fleet import encode_event

    producer = AIOKafkaProducer(
        bootstrap_servers=config.bootstrap_servers, linger_ms=5, acks="all", **config.security.kafka_options()
    )
    await start_client(config, producer.start, producer.stop)
    acked, started = 0, time.monotonic()
    try:
        pending: list[asyncio.Future[object]] = []
        for i, record in enumerate(records):
            key = str(record.key)
            pending.append(await producer.send(topic, encode_event(key, record.time, record.values), key=key.encode()))
            if len(pending) >= SEND_WINDOW:
                acked += len(await asyncio.gather(*pending))
                pending = []
            if rate > 0 and (ahead := started + (i + 1) / rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
        acked += len(await asyncio.gather(*pending))
    finally:
        await producer.stop()
    return acked


def _streams(records: Iterable[EventRecord]) -> int:
    return len({r.key for r in records})


def run(args: argparse.Namespace) -> int:
    """Read or generate the events, send them, print one line; 1 on a Kafka failure, 2 on bad input."""
    from aiokafka.errors import KafkaError

    from rnncore.errors import RnnCoreError
    from stream.commands.config_flags import config_overrides
    from stream.errors import ConfigError, KafkaConnectError, StreamError
    from stream.service.config import load_config

    if args.rate < 0 or (args.synthetic is not None and args.synthetic < 1):
        print("rnnwatch send: --rate must be >= 0 and --synthetic >= 1", file=sys.stderr)
        return 2
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # its INFO lines would bury the records
    try:
        config = load_config(args.config, overrides=config_overrides(args))
        records, source = _records(args)
    except (ConfigError, RnnCoreError, StreamError) as error:
        print(f"rnnwatch send: {error}", file=sys.stderr)
        return 2
    topic = args.topic or config.input_topic
    try:
        sent = asyncio.run(_send(config, topic, records, args.rate))
    except KafkaConnectError as error:
        print(f"rnnwatch send: {error}", file=sys.stderr)
        return 1
    except (KafkaError, OSError) as error:
        print(f"rnnwatch send: sending to {topic} on {config.bootstrap_servers} failed: {error}", file=sys.stderr)
        return 1
    print(f"sent {sent} events of {_streams(records)} streams to {topic} ({source})")
    return 0
