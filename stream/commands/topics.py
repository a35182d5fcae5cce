"""`rnnwatch topics create`: create the input, output, dead-letter and changelog topics the service needs.

Takes the same --config file and RNNWATCH_* settings as `rnnwatch serve` (so the names match), creates
whichever topic is missing with --partitions partitions (the changelog compacted, with as many partitions as
the input) and --replication-factor replicas, and prints one line per topic: created or exists.
Exit codes: 0 done, 1 Kafka refused, 2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.service.config import ServiceConfig

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stream.commands.config_flags import CONNECTION, add_config_flags

    parser.add_argument("action", choices=["create"])
    add_config_flags(parser, CONNECTION)  # --config, --bootstrap-servers, --security-*: serve's own
    parser.add_argument("--partitions", type=int, default=4, help="partitions of every topic (default 4)")
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=None,
        help="replicas per partition (default: min(3, brokers in the cluster))",
    )


async def _create(config: ServiceConfig, partitions: int, replication: int | None) -> dict[str, str]:
    from aiokafka.admin import AIOKafkaAdminClient

    from stream.commands.client_start import start_client
    from stream.service.topics import create_service_topics

    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap_servers, **config.security.kafka_options())
    await start_client(config, admin.start, admin.close)
    try:
        if replication is None:
            replication = min(3, len((await admin.describe_cluster()).get("brokers") or [None]))
        return await create_service_topics(admin, config, partitions, replication)
    finally:
        await admin.close()


def run(args: argparse.Namespace) -> int:
    """Load the service's settings, create the missing topics, print one line per topic; 1 Kafka, 2 config."""
    from aiokafka.errors import KafkaError

    from stream.commands.config_flags import config_overrides
    from stream.errors import ConfigError, KafkaConnectError, TopicError
    from stream.service.config import load_config

    if args.partitions < 1 or (args.replication_factor is not None and args.replication_factor < 1):
        print("rnnwatch topics: --partitions and --replication-factor must be >= 1", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config, overrides=config_overrides(args))
        result = asyncio.run(_create(config, args.partitions, args.replication_factor))
    except (ConfigError, TopicError) as error:
        print(f"rnnwatch topics: {error}", file=sys.stderr)
        return 2
    except KafkaConnectError as error:  # already one line naming the cause (TLS, SASL, unreachable)
        print(f"rnnwatch topics: {error}", file=sys.stderr)
        return 1
    except (KafkaError, OSError) as error:
        print(
            f"rnnwatch topics: creating topics on {args.bootstrap_servers or 'the configured cluster'} failed: {error}",
            file=sys.stderr,
        )
        return 1
    for name, outcome in result.items():
        print(f"{outcome}: {name}")
    return 0
