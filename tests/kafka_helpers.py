"""Helpers for tests against the real broker: unique names and topic creation usable from any test."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

T = TypeVar("T")
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
