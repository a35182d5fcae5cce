"""Reading changelog partitions back from Kafka (all partitions of one assignment in a single pass)."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

ChangelogRecords = list[tuple[bytes, bytes | None]]


async def read_changelog_partitions(
    consumer: AIOKafkaConsumer, topic: str, partitions: Iterable[int], *, max_records: int = 10_000
) -> dict[int, ChangelogRecords]:
    """Every committed (key, value) of the given partitions, in offset order, up to the end seen at the start.

    ``consumer`` must have no group and read_committed isolation; it is left with no assignment.
    """
    tps = [TopicPartition(topic, p) for p in partitions]
    records: dict[int, ChangelogRecords] = {tp.partition: [] for tp in tps}
    if not tps:
        return records
    consumer.assign(tps)
    try:
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > begin[tp]}
        for tp in tps:
            if tp in pending:
                consumer.seek(tp, begin[tp])
            else:
                consumer.pause(tp)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=200, max_records=max_records)
            for tp, messages in batch.items():
                records[tp.partition].extend(
                    (m.key, m.value) for m in messages if m.offset < end[tp] and m.key is not None
                )
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.unsubscribe()
    return records
