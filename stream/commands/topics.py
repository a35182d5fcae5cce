"""`rnnwatch topics create`: every topic the service reads and writes, with the partitions and compaction it needs.

Input, output and dead-letter topics get ``--partitions`` partitions; the changelog gets as many as the input
topic has and ``cleanup.policy=compact`` (the service restores each input partition from the changelog
partition of the same number). Topics that exist are left as they are and reported; a changelog with fewer
partitions than the input is an error, as it is at the service's start.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from stream.service.config import ConfigError, ServiceConfig, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: the action, where, and how many partitions; topic names come from the service's own settings."""
    parser.add_argument("action", choices=["create"], help="create the service's topics where missing")
    parser.add_argument("--config", default=None, help="the service's TOML config file (topic names, security)")
    parser.add_argument("--bootstrap-servers", default=None, help="Kafka cluster (else config / environment)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of a new input/output/DLQ topic")
    parser.add_argument(
        "--replication-factor", type=int, default=None, help="replicas per partition (default: min(3, brokers))"
    )


async def create_topics(config: ServiceConfig, partitions: int, replication: int | None) -> list[str]:
    """Create what is missing; returns one line per topic saying what was done."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from stream.service.connection import explained_connection_errors

    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap_servers, **config.security.kafka_options())
    async with explained_connection_errors(config):  # a bad password or certificate: say which
        await admin.start()
    try:
        brokers = (await admin.describe_cluster()).get("brokers") or [None]
        replicas = replication if replication is not None else min(3, len(brokers))
        names = [config.input_topic, config.output_topic, config.dead_letter_topic, config.changelog_topic]
        described = {d["topic"]: d for d in await admin.describe_topics(names)}

        def existing(name: str) -> int | None:
            found = described.get(name) or {}
            return len(found["partitions"]) if not found.get("error_code") and found.get("partitions") else None

        report: list[str] = []
        n_input = existing(config.input_topic) or partitions
        wanted: list[tuple[str, int, dict[str, Any]]] = [
            (config.input_topic, partitions, {}),
            (config.output_topic, partitions, {}),
            (config.dead_letter_topic, partitions, {}),
            (config.changelog_topic, n_input, {"cleanup.policy": "compact"}),
        ]
        for name, count, topic_config in wanted:
            have = existing(name)
            if have is not None:
                if name == config.changelog_topic and have < n_input:
                    raise ConfigError(
                        f"changelog topic {name!r} has {have} partitions, the input topic {n_input}: give it at "
                        "least as many (kafka-topics --alter --partitions) or choose a new changelog_topic"
                    )
                report.append(f"exists   {name} ({have} partitions)")
                continue
            try:
                await admin.create_topics([NewTopic(name, count, replicas, topic_configs=topic_config)])
            except TopicAlreadyExistsError:  # created meanwhile by someone else: fine
                report.append(f"exists   {name}")
                continue
            extra = ", compacted" if topic_config else ""
            report.append(f"created  {name} ({count} partitions, {replicas} replicas{extra})")
        return report
    finally:
        await admin.close()


def run(args: argparse.Namespace) -> int:
    """Load the service's settings, create the missing topics, print what was done; 2 on a bad setting."""
    from aiokafka.errors import KafkaError

    from stream.service.connection import KafkaConnectError

    if args.partitions < 1 or (args.replication_factor is not None and args.replication_factor < 1):
        print("rnnwatch topics: --partitions and --replication-factor must be >= 1", file=sys.stderr)
        return 2
    try:
        overrides = {"bootstrap_servers": args.bootstrap_servers} if args.bootstrap_servers else {}
        config = load_config(args.config, overrides=overrides)
        lines = asyncio.run(create_topics(config, args.partitions, args.replication_factor))
    except ConfigError as error:
        print(f"rnnwatch topics: {error}", file=sys.stderr)
        return 2
    except KafkaConnectError as error:
        print(f"rnnwatch topics: {error}", file=sys.stderr)
        return 1
    except (KafkaError, OSError) as error:
        print(f"rnnwatch topics: cannot reach Kafka at the configured bootstrap servers: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
