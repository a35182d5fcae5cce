"""Helpers for tests against the real broker: unique names and topic creation usable from any test."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.local_broker import LocalBroker, deploy_dir

T = TypeVar("T")
MakeServiceTopics = Callable[..., dict[str, str]]  # the make_service_topics fixture
_counter = itertools.count()


def unique_name(prefix: str) -> str:
    """A name no other test (or earlier run against the same broker) uses."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:8]}"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync or async code (in its own thread and event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def create_topics(bootstrap: str, topics: list[NewTopic]) -> None:
    """Create topics and wait until the broker reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        await admin.create_topics(topics)
        for _ in range(100):
            described = await admin.describe_topics([t.name for t in topics])
            if all(not d.get("error_code") and d.get("partitions") for d in described):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"topics not ready: {[t.name for t in topics]}")
    finally:
        await admin.close()


def topic_maker(bootstrap: str) -> Callable[..., str]:
    """Factory on one broker: ``make(partitions, prefix, config)`` creates a uniquely named topic, returns its name."""

    def make(partitions: int = 1, prefix: str = "t", config: dict[str, str] | None = None) -> str:
        name = unique_name(prefix)
        topic = NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=config or {})
        run_sync(create_topics(bootstrap, [topic]))
        return name

    return make


def service_topics(make_topic: Callable[..., str], partitions: int = 1) -> dict[str, str]:
    """Fresh input, output, dead-letter and (compacted) changelog topics; input and changelog have ``partitions``."""
    return {
        "input": make_topic(partitions=partitions, prefix="in"),
        "output": make_topic(partitions=1, prefix="out"),
        "dlq": make_topic(partitions=1, prefix="dlq"),
        "changelog": make_topic(partitions=partitions, prefix="log", config={"cleanup.policy": "compact"}),
    }


@contextlib.contextmanager
def secured_broker(run_dir: Path, properties: str, user: str, password: str) -> Iterator[str]:
    """A broker of a test module's own with the extra listeners of deploy/kafka/``properties`` and a SCRAM user;
    yields its plaintext bootstrap and stops it on leaving."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNWATCH_KAFKA_SCRAM", f"SCRAM-SHA-256=[name={user},password={password}]")
        broker = LocalBroker(run_dir=run_dir, extra_config=deploy_dir() / properties)
        plain = broker.start()
    try:
        yield plain
    finally:
        broker.stop()
