"""Helpers for service tests against the real broker: publish events, run a service, read what it published."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.service.app import Service
from stream.service.codec import decode_score, header_value
from stream.service.config import ServiceConfig


def event(key: str, t: float, value: float | list[float]) -> bytes:
    return orjson.dumps({"key": key, "time": t, "value": value})


async def publish(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    """Send (key, value) messages in order and wait for every acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0, settle: float = 1.0) -> list[Any]:
    """Read a topic from the start (read_committed) until ``expected`` records came and ``settle`` s passed quietly."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            quiet = 0.0
            while len(records) < expected or quiet < settle:
                batch = await consumer.getmany(timeout_ms=250)
                got = [m for messages in batch.values() for m in messages]
                records.extend(got)
                quiet = 0.0 if got or len(records) < expected else quiet + 0.25
    finally:
        await consumer.stop()
    return records


def scores_by_key(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Score records grouped by stream key, in input-offset order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        score = decode_score(record.value)
        grouped.setdefault(score["key"], []).append(score)
    for scores in grouped.values():
        scores.sort(key=lambda s: (s["partition"], s["offset"]))
    return grouped


def reasons(records: list[Any]) -> list[str | None]:
    return [header_value(list(r.headers), "rnnwatch-reason") for r in records]


async def run_service_until(
    config: ServiceConfig, done: Callable[[Service], bool], *, timeout: float = 60.0, **service_args: Any
) -> Service:
    """Run a service until ``done(service)`` is true (checked every 100 ms), then stop it cleanly."""
    async with Service(config, **service_args) as service:
        task = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(timeout):
                while not done(service):
                    if task.done():
                        task.result()
                        raise AssertionError("service stopped on its own")
                    await asyncio.sleep(0.1)
        finally:
            service.request_stop()
            await task
    return service


def config_for(bootstrap: str, topics: dict[str, str], group: str, **overrides: Any) -> ServiceConfig:
    return ServiceConfig(
        bootstrap_servers=bootstrap,
        input_topic=topics["input"],
        output_topic=topics["output"],
        dead_letter_topic=topics["dlq"],
        changelog_topic=topics["changelog"],
        group_id=group,
        instance_id="test",
        max_batch_wait_ms=20,
        metrics_port=0,
        **overrides,
    )
