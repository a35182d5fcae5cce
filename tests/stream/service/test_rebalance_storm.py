"""A join/leave storm (issue 17's run: it came out exactly once; kept so it stays so): replicas join and leave the
group again and again while events arrive; a read_committed reader sees every input offset scored once, with the
scores of one uninterrupted offline run (each partition's state handed over through the changelog every time)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from stream.service.app import Service
from stream.service.codec import decode_score
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.fake_detector import FakeDetector
from tests.stream.service_harness import (
    assert_scores_match,
    config_for,
    messages_of,
    offline_scores,
    publish,
    read_all,
    scores_by_key,
    stream_events,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

# (action, replica) between chunks of events: A stays, B and C come and go (B twice)
STORM = [("join", "b"), ("join", "c"), ("leave", "b"), ("join", "b"), ("leave", "c"), ("leave", "b")]


def test_replicas_joining_and_leaving_again_and_again_score_every_offset_once(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=4)
    events = stream_events(n_keys=12, per_key=35, seed=7)
    messages = messages_of(events)
    chunks = np.array_split(np.arange(len(messages)), len(STORM) + 1)
    base = config_for(kafka_bootstrap, topics, make_group(), max_batch_size=16, snapshot_every=4)

    async def scenario() -> None:
        running: dict[str, tuple[Service, asyncio.Task[None]]] = {}
        ever: list[Service] = []

        async def join(name: str) -> None:
            service = Service(
                dataclasses.replace(base, instance_id=f"test-{name}"), make_detector=FakeDetector, n_features=1
            )
            await service.start()
            running[name] = (service, asyncio.create_task(service.run()))
            ever.append(service)

        async def leave(name: str) -> None:
            service, task = running.pop(name)
            service.request_stop()
            await task
            await service.stop()

        async def wait_for(condition: Callable[[], bool]) -> None:
            async with asyncio.timeout(90):
                while not condition():
                    for _, task in running.values():
                        if task.done():
                            task.result()
                    await asyncio.sleep(0.05)

        def scored() -> float:
            return sum(s.metrics.value("rnnwatch_events_scored_total") for s in ever)

        def spread() -> bool:  # every running replica holds a partition: the rebalance is done
            return all(s.metrics.value("rnnwatch_assigned_partitions") > 0 for s, _ in running.values())

        await join("a")
        published = 0
        try:
            for step, chunk in enumerate(chunks):
                await publish(kafka_bootstrap, topics["input"], [messages[i] for i in chunk])
                published += len(chunk)
                await wait_for(lambda n=published: scored() >= n)
                if step < len(STORM):
                    action, name = STORM[step]
                    await (join(name) if action == "join" else leave(name))
                    await wait_for(spread)
        finally:
            for name in list(running):
                with contextlib.suppress(Exception):
                    await leave(name)

    run_sync(scenario())
    records = run_sync(read_all(kafka_bootstrap, topics["output"], len(messages)))
    offsets = [(s["partition"], s["offset"]) for s in map(decode_score, (r.value for r in records))]
    assert len(offsets) == len(messages) and len(set(offsets)) == len(offsets)  # each input offset once
    got = scores_by_key(records)
    expected = offline_scores(FakeDetector(), events)
    assert sorted(got) == sorted(expected)
    assert_scores_match(got, expected)
