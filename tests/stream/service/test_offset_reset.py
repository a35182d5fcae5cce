"""``auto_offset_reset`` (issue 17 item 10: it was fixed to earliest) decides where a group without committed offsets
starts: ``earliest`` scores the backlog, ``latest`` only what arrives after it joined (real broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import TopicPartition

from stream.service.app import Service
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.fake_detector import FakeDetector
from tests.stream.service_harness import config_for, event, publish, read_scores, running, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_a_new_group_starts_at_the_offset_auto_offset_reset_names(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str], reset: str
) -> None:
    topics = make_service_topics(partitions=1)
    backlog = [(b"old", event("old", float(t), 1.0)) for t in range(5)]
    run_sync(publish(kafka_bootstrap, topics["input"], backlog))
    config = config_for(kafka_bootstrap, topics, make_group(), auto_offset_reset=reset)
    expected = {"earliest": 6, "latest": 1}[reset]

    async def scenario() -> Service:
        service = Service(config, make_detector=FakeDetector, n_features=1)
        scored = lambda: service.metrics.value("rnnwatch_events_scored_total")  # noqa: E731
        async with running(service) as task:
            await wait_until(lambda: service.health.readiness().ok, task, "assigned and ready")
            if reset == "earliest":
                await wait_until(lambda: scored() == len(backlog), task, "the backlog scored")
            else:  # the reset puts the fetch position at the end: the backlog is behind it, never scored
                assert service._consumer is not None
                tp = TopicPartition(topics["input"], 0)
                assert await asyncio.wait_for(service._consumer.position(tp), 30) == len(backlog)
            await publish(kafka_bootstrap, topics["input"], [(b"new", event("new", 10.0, 1.0))])
            await wait_until(lambda: scored() == expected, task, "the new event scored")
        return service

    service = run_sync(scenario())
    assert service.metrics.value("rnnwatch_events_scored_total") == expected
    keys = sorted(read_scores(kafka_bootstrap, topics["output"], expected))
    assert keys == (["new", "old"] if reset == "earliest" else ["new"])
