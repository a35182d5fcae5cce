"""`rnnwatch tail`: print the service's score records (or any of its topics) as JSON Lines, read_committed.

Reads from the beginning of the topic (``--from-end`` for new records only) without a consumer group, so it
never moves the service's offsets, and stops after ``--count`` records, or when nothing has arrived for
``--idle-seconds``. ``--anomalies`` prints only records flagged as anomalies. Settings are `rnnwatch serve`'s.
Exit codes: 0 done, 1 Kafka unreachable or fewer than ``--count`` records before the idle timeout, 2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from stream.service.config import ServiceConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: the topic, where to start, when to stop and what to keep."""
    from stream.commands.config_flags import CONNECTION, add_config_flags

    add_config_flags(parser, CONNECTION)  # --config, --bootstrap-servers, --security-*: serve's own
    parser.add_argument("--topic", default=None, help="topic to read (default: the service's output_topic)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many records; 0 never")
    parser.add_argument("--idle-seconds", type=float, default=0.0, help="stop when nothing arrives this long; 0 never")
    parser.add_argument("--from-end", action="store_true", help="print only records written from now on")
    parser.add_argument("--anomalies", action="store_true", help="only score records with anomaly true")


class TailError(RuntimeError):
    """The topic to read does not exist."""


def _keep(value: bytes | None, anomalies_only: bool) -> bool:
    if not anomalies_only:
        return True
    try:
        return bool(orjson.loads(value or b"null").get("anomaly"))
    except (orjson.JSONDecodeError, AttributeError):
        return False


async def _tail(config: ServiceConfig, args: argparse.Namespace, topic: str) -> int:
    """Print records until ``--count`` or the idle timeout; returns how many were printed."""
    from aiokafka import AIOKafkaConsumer

    from stream.commands.client_start import start_client

    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.bootstrap_servers,
        group_id=None,  # no group: every partition, and the service's offsets are never touched
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="latest" if args.from_end else "earliest",
        **config.security.kafka_options(),
    )
    await start_client(config, consumer.start, consumer.stop)
    try:
        if topic not in await consumer.topics():  # subscribing to a missing topic logs an error 10 times a second
            raise TailError(
                f"topic {topic!r} does not exist on {config.bootstrap_servers}: start `rnnwatch serve` after "
                "`rnnwatch topics create` (same --config / RNNWATCH_* settings), or give --topic"
            )
        consumer.subscribe([topic])
    except BaseException:
        await consumer.stop()
        raise
    printed = 0
    try:
        while not args.count or printed < args.count:
            timeout_ms = int(args.idle_seconds * 1000) if args.idle_seconds else 1000
            batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
            if not batch and args.idle_seconds:
                break
            for message in (m for messages in batch.values() for m in messages):
                if _keep(message.value, args.anomalies):
                    sys.stdout.write((message.value or b"").decode("utf-8", "replace") + "\n")
                    printed += 1
                    if args.count and printed >= args.count:
                        break
            sys.stdout.flush()
    finally:
        await consumer.stop()
    return printed


def run(args: argparse.Namespace) -> int:
    """Print the topic's records; 1 when Kafka fails or fewer than ``--count`` came, 2 on bad settings."""
    from aiokafka.errors import KafkaError

    from stream.commands.config_flags import config_overrides
    from stream.errors import ConfigError, KafkaConnectError
    from stream.service.config import load_config

    if args.count < 0 or args.idle_seconds < 0:
        print("rnnwatch tail: --count and --idle-seconds must be >= 0", file=sys.stderr)
        return 2
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # its INFO lines would bury the records
    try:
        config = load_config(args.config, overrides=config_overrides(args))
    except ConfigError as error:
        print(f"rnnwatch tail: {error}", file=sys.stderr)
        return 2
    topic = args.topic or config.output_topic
    try:
        printed = asyncio.run(_tail(config, args, topic))
    except KeyboardInterrupt:
        return 0
    except (KafkaConnectError, TailError) as error:
        print(f"rnnwatch tail: {error}", file=sys.stderr)
        return 1
    except (KafkaError, OSError) as error:
        print(f"rnnwatch tail: reading {topic} on {config.bootstrap_servers} failed: {error}", file=sys.stderr)
        return 1
    if args.count and printed < args.count:
        print(f"rnnwatch tail: {printed} of {args.count} records from {topic} before {args.idle_seconds:g} s idle",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
