"""Per-partition transactional producers against the real broker: the newest owner of a partition fences the old."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.errors import PartitionFencedError
from stream.service.fencing import PartitionProducers, transactional_id_for
from stream.service.partition import OutRecord, ScoreRecords
from tests.kafka_helpers import run_sync
from tests.stream.service_harness import read_all


def test_the_transactional_id_names_group_topic_and_partition_not_the_replica() -> None:
    assert transactional_id_for("g", "events", 3) == "rnnwatch-g-events-3"
    assert transactional_id_for("g", "events", "*") == "rnnwatch-g-events-*"


def _factory(bootstrap: str) -> Callable[[str], AIOKafkaProducer]:
    return lambda tid: AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid, acks="all")


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


async def _old_and_new_owner(bootstrap: str, input_topic: str, output: str, group: str) -> int | None:
    """Replica 'old' holds partition 1, replica 'new' takes it; both then try to commit a batch."""
    tp = TopicPartition(input_topic, 1)
    old = PartitionProducers(_factory(bootstrap), group, input_topic)
    new = PartitionProducers(_factory(bootstrap), group, input_topic)
    try:
        await old.acquire([1])
        await old.commit(tp, 10, [OutRecord(output, b"k", b"old-before", partition=0)], [])
        await new.acquire([1, 0])
        assert new.partitions == {0, 1}
        with pytest.raises(PartitionFencedError, match="partition 1 was taken over"):
            await old.commit(tp, 20, [OutRecord(output, b"k", b"old-after", partition=0)], [])
        await new.commit(tp, 15, [], [ScoreRecords(output, [b"k"], [b"new"])])
    finally:
        await old.close()
        await new.close()
    assert old.partitions == set() == new.partitions
    return await _committed(bootstrap, group, tp)


@pytest.mark.kafka
@pytest.mark.faults
@pytest.mark.timeout(120)
def test_a_new_owner_fences_the_old_one_whose_batch_and_offsets_never_become_visible(
    kafka_bootstrap: str, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    input_topic, output, group = make_topic(partitions=2, prefix="in"), make_topic(prefix="out"), make_group()
    committed = run_sync(_old_and_new_owner(kafka_bootstrap, input_topic, output, group))
    assert committed == 15  # the new owner's offset; the fenced 20 never committed
    values = [r.value for r in run_sync(read_all(kafka_bootstrap, output, 2, timeout=30))]
    assert values == [b"old-before", b"new"]  # read_committed: nothing of the fenced batch
