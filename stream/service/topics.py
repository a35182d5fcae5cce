"""Topic settings the service reads from the cluster before it writes anything (sizes, existence).

The service writes record batches of ``producer_batch_bytes`` (the producer's ``max_batch_size``: up to 1 MiB,
less where a written topic's ``max.message.bytes`` is lower, never under ``PRODUCER_BATCH_BYTES``) and dead
letters of up to the dead-letter topic's ``max.message.bytes``; a topic whose limit is lower would refuse a
batch in the middle of a transaction, so the limits are read once at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from stream.errors import TopicError
from stream.service.config import ServiceConfig
from stream.service.dead_letter import BATCH_OVERHEAD_BYTES, DEFAULT_MAX_MESSAGE_BYTES, dead_letter_budget

logger = logging.getLogger(__name__)

PRODUCER_BATCH_BYTES = 256 * 1024  # the smallest max_batch_size: the default 16 KiB gives ~80 records a request
# The largest: a batch per partition per produce request and one request in flight per broker, so a 2 MB
# changelog delta takes 2 round trips at 1 MiB instead of 8 at 256 KiB (issue 15). The broker default
# max.message.bytes (1048588) holds a 1 MiB batch less its overhead.
MAX_PRODUCER_BATCH_BYTES = 1 << 20
MAX_MESSAGE_BYTES = "max.message.bytes"


async def topic_max_message_bytes(admin: AIOKafkaAdminClient, topic: str) -> int | None:
    """The topic's ``max.message.bytes`` (the largest record batch the broker accepts), or None if unreadable.

    None when the principal may not describe the topic's configs (the caller then assumes the broker default).
    """
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {MAX_MESSAGE_BYTES: None})
    try:
        responses = await admin.describe_configs([resource])
    except KafkaError as error:
        logger.warning("cannot read %s of topic %s (%s); assuming the broker default", MAX_MESSAGE_BYTES, topic, error)
        return None
    for response in responses:
        for entry in response.to_object()["resources"]:
            if entry["resource_name"] != topic or entry["error_code"]:
                continue
            for config in entry["config_entries"]:
                if config["config_names"] == MAX_MESSAGE_BYTES and config["config_value"] is not None:
                    return int(config["config_value"])
    logger.warning("topic %s reported no %s; assuming the broker default", topic, MAX_MESSAGE_BYTES)
    return None


def check_batch_limit(topic: str, role: str, limit: int | None) -> None:
    """Refuse a written topic whose ``max.message.bytes`` is below the producer's batch size."""
    needed = PRODUCER_BATCH_BYTES + BATCH_OVERHEAD_BYTES
    if limit is not None and limit < needed:
        raise TopicError(
            f"{role} topic {topic!r} has {MAX_MESSAGE_BYTES}={limit}, below the {needed} bytes of the service's "
            f"record batches: raise it (kafka-configs.sh --alter --entity-type topics --entity-name {topic} "
            f"--add-config {MAX_MESSAGE_BYTES}={needed})"
        )


def producer_batch_bytes(limits: Iterable[int | None]) -> int:
    """The producer's batch size for topics with these ``max.message.bytes`` (None: the broker default): the
    largest batch every one of them takes, at most ``MAX_PRODUCER_BATCH_BYTES`` (``check_batch_limit`` has
    refused a limit below ``PRODUCER_BATCH_BYTES``)."""
    room = min((DEFAULT_MAX_MESSAGE_BYTES if limit is None else limit) for limit in [*limits, None])
    return max(PRODUCER_BATCH_BYTES, min(MAX_PRODUCER_BATCH_BYTES, room - BATCH_OVERHEAD_BYTES))


async def ensure_changelog_topic(admin: AIOKafkaAdminClient, config: ServiceConfig) -> None:
    """The changelog must exist, be compacted, and have at least the input topic's partitions (created if absent)."""
    c = config
    described = {d["topic"]: d for d in await admin.describe_topics([c.input_topic, c.changelog_topic])}
    source = described.get(c.input_topic)
    if not source or source.get("error_code") or not source.get("partitions"):
        raise TopicError(f"input topic {c.input_topic!r} does not exist on {c.bootstrap_servers}; create it")
    n_input = len(source["partitions"])
    changelog = described.get(c.changelog_topic)
    if changelog and not changelog.get("error_code") and changelog.get("partitions"):
        if len(changelog["partitions"]) < n_input:
            raise TopicError(
                f"changelog topic {c.changelog_topic!r} has {len(changelog['partitions'])} partitions, "
                f"the input topic {n_input}: give it at least as many"
            )
        return
    brokers = (await admin.describe_cluster()).get("brokers") or [None]
    replicas = min(3, len(brokers))
    topic = NewTopic(
        c.changelog_topic,
        num_partitions=n_input,
        replication_factor=replicas,
        topic_configs={"cleanup.policy": "compact"},
    )
    try:
        await admin.create_topics([topic])
    except TopicAlreadyExistsError:  # another replica created it first
        return
    logger.info("created changelog topic %s: %d partitions, %d replicas", c.changelog_topic, n_input, replicas)


async def dead_letter_limit(admin: AIOKafkaAdminClient, config: ServiceConfig) -> int:
    """The byte budget of one dead letter (the dead-letter topic's ``max.message.bytes``), checked usable."""
    limit = await topic_max_message_bytes(admin, config.dead_letter_topic)
    check_batch_limit(config.dead_letter_topic, "dead-letter", limit)
    return dead_letter_budget(limit)


def _exists(described: dict[str, dict[str, Any]], name: str) -> bool:
    found = described.get(name)
    return bool(found and not found.get("error_code") and found.get("partitions"))


def _missing_topic(config: ServiceConfig, role: str, name: str) -> TopicError:
    return TopicError(
        f"{role} topic {name!r} does not exist on {config.bootstrap_servers}; create it with `rnnwatch topics "
        f"create` (same --config / RNNWATCH_* settings as serve), or kafka-topics.sh --create --topic {name}"
    )


async def check_written_topics(admin: AIOKafkaAdminClient, config: ServiceConfig) -> list[int | None]:
    """Every topic the service writes besides the changelog (which it creates) must exist, with room for a batch;
    returns the ``max.message.bytes`` of the output topic and the changelog (None where unreadable)."""
    written = {"output": config.output_topic, "dead-letter": config.dead_letter_topic}
    described = {d["topic"]: d for d in await admin.describe_topics(list(written.values()))}
    for role, name in written.items():
        if not _exists(described, name):
            raise _missing_topic(config, role, name)
    output_limit = await topic_max_message_bytes(admin, config.output_topic)
    check_batch_limit(config.output_topic, "output", output_limit)
    return [output_limit, await topic_max_message_bytes(admin, config.changelog_topic)]


def service_topics(config: ServiceConfig, partitions: int, replication_factor: int) -> list[NewTopic]:
    """The topics a service with ``config`` reads and writes, as it needs them: the changelog compacted and with
    the input's partition count (input partition p keeps its state in changelog partition p)."""
    plain = [config.input_topic, config.output_topic, config.dead_letter_topic]
    topics = [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor) for name in plain]
    topics.append(
        NewTopic(
            config.changelog_topic,
            num_partitions=partitions,
            replication_factor=replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        )
    )
    return topics


async def create_service_topics(
    admin: AIOKafkaAdminClient, config: ServiceConfig, partitions: int, replication_factor: int
) -> dict[str, str]:
    """Create whichever of the service's topics are missing; returns topic -> "created" or "exists"."""
    wanted = service_topics(config, partitions, replication_factor)
    described = {d["topic"]: d for d in await admin.describe_topics([t.name for t in wanted])}
    if _exists(described, config.input_topic) and _exists(described, config.changelog_topic):
        n_input = len(described[config.input_topic]["partitions"])
        n_changelog = len(described[config.changelog_topic]["partitions"])
        if n_changelog < n_input:  # the service refuses it at start: say so now
            raise TopicError(
                f"changelog topic {config.changelog_topic!r} has {n_changelog} partitions, the input topic "
                f"{n_input}: give it at least as many (kafka-topics --alter --partitions) or choose a new "
                "changelog_topic"
            )
    if _exists(described, config.input_topic):  # the changelog follows the input that exists, not --partitions
        n_input = len(described[config.input_topic]["partitions"])
        wanted = [
            NewTopic(t.name, n_input, t.replication_factor, topic_configs=t.topic_configs)
            if t.name == config.changelog_topic
            else t
            for t in wanted
        ]
    missing = [t for t in wanted if not _exists(described, t.name)]
    if missing:
        await admin.create_topics(missing)
    created = {t.name for t in missing}
    return {t.name: "created" if t.name in created else "exists" for t in wanted}
