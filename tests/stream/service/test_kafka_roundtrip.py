"""The foundation: the real local broker takes 10,000 events on 3 partitions and gives every one back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

N_EVENTS = 10_000
PARTITIONS = 3


async def test_10k_events_round_trip_in_order_per_partition(
    kafka_bootstrap: str, make_topic: Callable[..., str], make_group: Callable[[], str]
) -> None:
    topic = make_topic(partitions=PARTITIONS, prefix="roundtrip")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, value=str(i).encode(), key=f"s{i % 97}".encode(), partition=i % PARTITIONS)
            for i in range(N_EVENTS)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=make_group(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    try:
        async with asyncio.timeout(90):
            while sum(map(len, seen.values())) < N_EVENTS:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for tp, records in batches.items():
                    seen[tp.partition].extend(int(r.value) for r in records)
    finally:
        await consumer.stop()

    for partition, values in seen.items():
        expected = list(range(partition, N_EVENTS, PARTITIONS))
        assert values == expected, f"partition {partition} out of order or incomplete"
