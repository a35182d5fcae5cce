"""The publisher's batch size and submission order (issue 15): fewer round trips per transaction."""

from __future__ import annotations

from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

from stream.service.dead_letter import BATCH_OVERHEAD_BYTES, DEFAULT_MAX_MESSAGE_BYTES
from stream.service.publisher import _Builders
from stream.service.topics import MAX_PRODUCER_BATCH_BYTES, PRODUCER_BATCH_BYTES, producer_batch_bytes


def test_the_batch_size_is_the_largest_every_written_topic_takes_up_to_one_mib() -> None:
    assert producer_batch_bytes([]) == DEFAULT_MAX_MESSAGE_BYTES - BATCH_OVERHEAD_BYTES  # the broker default
    assert producer_batch_bytes([None, 8 << 20]) == DEFAULT_MAX_MESSAGE_BYTES - BATCH_OVERHEAD_BYTES
    assert producer_batch_bytes([600_000, 8 << 20]) == 600_000 - BATCH_OVERHEAD_BYTES  # the smallest topic's
    assert producer_batch_bytes([PRODUCER_BATCH_BYTES + BATCH_OVERHEAD_BYTES]) == PRODUCER_BATCH_BYTES
    assert DEFAULT_MAX_MESSAGE_BYTES - BATCH_OVERHEAD_BYTES < MAX_PRODUCER_BATCH_BYTES  # the cap binds above it


class _BuilderSource:
    """What ``_Builders`` takes from a producer: ``create_batch`` (1 KiB batches; nothing is sent here)."""

    def create_batch(self) -> Any:
        return BatchBuilder(1024, 0)


def test_builders_are_handed_over_round_robin_over_partitions_in_data_order_within_each() -> None:
    builders = _Builders(_BuilderSource())  # type: ignore[arg-type]
    value = b"x" * 400  # two records per 1 KiB builder
    for i in range(6):  # changelog partition 0: three builders
        builders.append("changelog", 0, b"c%d" % i, value, [])
    for i in range(2):  # output partitions 1 and 3: one builder each
        builders.append("scores", 1, b"s%d" % i, value, [])
        builders.append("scores", 3, b"t%d" % i, value, [])
    order = [(topic, partition) for topic, partition, _ in builders.closed()]
    assert order == [("changelog", 0), ("scores", 1), ("scores", 3), ("changelog", 0), ("changelog", 0)]
    changelog = [builder for topic, _, builder in builders.closed() if topic == "changelog"]
    assert [b.record_count() for b in changelog] == [2, 2, 2]
