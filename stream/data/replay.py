"""Replay a Kafka topic's retained events between two times or offsets as ``EventRecord``s (for training).

Each message value is one JSON event, as in the JSON Lines logs: ``{"key", "time", "value" | "values"}``; when
the payload has no ``key`` the Kafka message key is used. Malformed messages are skipped and counted in the
same ``ReadSummary`` the file readers use (location ``topic[partition]@offset``).

Range semantics, per partition: reading starts at ``start_offset``, or at the first offset whose Kafka
timestamp is >= ``start_time`` (Kafka's time index), and stops before ``end_offset``, or before the first
offset whose timestamp is > ``end_time``, and never reads past the end offsets seen when the replay began,
so a replay of a live topic terminates. Times are float seconds since the epoch. No consumer group is used
and nothing is committed; only committed transactional messages are read.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from stream.data.eventlog import EventRecord, ReadSummary, check_width
from stream.data.wire import loads, parse_event
from stream.errors import EventRejectedError, ReplayError

logger = logging.getLogger(__name__)


def decode_message(value: bytes | None, key: bytes | None) -> EventRecord:
    """One Kafka message -> record by the wire rules, raising ``EventRejectedError`` with the skip reason."""
    if value is None:
        raise EventRejectedError("empty_message")
    return parse_event(loads(value), key)


async def _topic_partitions(bootstrap_servers: str, topic: str, client_options: dict[str, Any]) -> set[int]:
    """The topic's partition ids from the cluster metadata; ``ReplayError`` when it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options)
    try:
        await admin.start()
        (described,) = await admin.describe_topics([topic])
    except KafkaError as exc:
        raise ReplayError(
            f"cannot read topic metadata from {bootstrap_servers} ({exc}); check the "
            "address (--bootstrap-servers) and that the broker is up"
        ) from exc
    finally:
        await admin.close()
    if described.get("error_code") or not described.get("partitions"):
        raise ReplayError(f"topic {topic!r} does not exist on {bootstrap_servers}")
    return {int(p["partition"]) for p in described["partitions"]}


async def _partition_ranges(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    start_time: float | None,
    end_time: float | None,
    start_offset: int | None,
    end_offset: int | None,
) -> dict[TopicPartition, tuple[int, int]]:
    """[first, stop) offsets per partition for the requested range, within what the topic retains now."""
    begin = await consumer.beginning_offsets(partitions)
    end = await consumer.end_offsets(partitions)
    starts = {tp: max(begin[tp], start_offset or 0) for tp in partitions}
    stops = {tp: end[tp] if end_offset is None else min(end[tp], end_offset) for tp in partitions}
    if start_time is not None:
        found = await consumer.offsets_for_times({tp: int(start_time * 1000) for tp in partitions})
        for tp in partitions:
            starts[tp] = max(starts[tp], found[tp].offset) if found[tp] is not None else stops[tp]
    if end_time is not None:
        # Exclusive: the first offset stamped strictly after end_time (Kafka timestamps are milliseconds).
        found = await consumer.offsets_for_times({tp: int(end_time * 1000) + 1 for tp in partitions})
        for tp in partitions:
            if found[tp] is not None:
                stops[tp] = min(stops[tp], found[tp].offset)
    return {tp: (starts[tp], stops[tp]) for tp in partitions if starts[tp] < stops[tp]}


async def replay_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    start_time: float | None = None,
    end_time: float | None = None,
    start_offset: int | None = None,
    end_offset: int | None = None,
    partitions: Sequence[int] | None = None,
    summary: ReadSummary | None = None,
    consumer_options: dict[str, Any] | None = None,
    client_options: dict[str, Any] | None = None,
) -> AsyncIterator[EventRecord]:
    """Yield the topic's valid events in the range (in offset order per partition); see the module doc.

    ``client_options`` go to every client (the metadata lookup and the consumer): the connection's security
    (``SecurityConfig.kafka_options()``); ``consumer_options`` to the consumer only."""
    if start_time is not None and end_time is not None and end_time < start_time:
        raise ReplayError(f"end_time {end_time} is before start_time {start_time}")
    if start_offset is not None and end_offset is not None and end_offset < start_offset:
        raise ReplayError(f"end_offset {end_offset} is before start_offset {start_offset}")
    summary = summary if summary is not None else ReadSummary()
    known = await _topic_partitions(bootstrap_servers, topic, client_options or {})
    wanted = sorted(known) if partitions is None else list(partitions)
    missing = sorted(set(wanted) - set(known))
    if missing:
        raise ReplayError(f"topic {topic!r} has no partitions {missing} (it has {sorted(known)})")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **(client_options or {}),
        **(consumer_options or {}),
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise ReplayError(f"cannot consume from {bootstrap_servers}: {exc!r}") from exc
    try:
        tps = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(tps)
        ranges = await _partition_ranges(consumer, tps, start_time, end_time, start_offset, end_offset)
        summary.files += 1
        for tp in tps:
            if tp in ranges:
                consumer.seek(tp, ranges[tp][0])
            else:
                consumer.pause(tp)
        pending = dict(ranges)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            for tp, messages in batches.items():
                for record in _in_range(messages, pending.get(tp)):
                    event = _validated(record, summary)
                    if event is not None:
                        yield event
            for tp in list(pending):
                if await consumer.position(tp) >= pending[tp][1]:
                    del pending[tp]
                    consumer.pause(tp)
    finally:
        await consumer.stop()


def _in_range(messages: list[ConsumerRecord[bytes, bytes]], bounds: tuple[int, int] | None) -> list[Any]:
    if bounds is None:
        return []
    return [m for m in messages if bounds[0] <= m.offset < bounds[1]]


def _validated(message: ConsumerRecord[bytes, bytes], summary: ReadSummary) -> EventRecord | None:
    summary.rows += 1
    try:
        event = decode_message(message.value, message.key)
        check_width(event, summary)
    except EventRejectedError as exc:
        summary.skip(exc.reason, f"{message.topic}[{message.partition}]@{message.offset}")
        return None
    summary.accepted += 1
    return event


async def read_topic(
    bootstrap_servers: str, topic: str, client_options: dict[str, Any] | None = None, **range_options: Any
) -> tuple[list[EventRecord], ReadSummary]:
    """Collect a whole replay into a list plus its summary (what ``rnnwatch train --topic`` uses); ``client_options``
    are the connection's security settings (``SecurityConfig.kafka_options()``)."""
    summary = ReadSummary()
    replay = replay_topic(bootstrap_servers, topic, summary=summary, client_options=client_options, **range_options)
    records = [r async for r in replay]
    return records, summary
