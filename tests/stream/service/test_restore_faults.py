"""Restore cannot hang: a stray changelog record is skipped and counted, a slow restore is bounded, and readiness
says why the service is not ready."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from stream.errors import ServiceError
from stream.service.app import Service
from stream.service.changelog import restore_from_records
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.fake_detector import FakeDetector
from tests.stream.service_harness import (
    assert_scores_match,
    config_for,
    messages_of,
    offline_scores,
    publish,
    read_scores,
    serve_in_two_runs,
    stream_events,
)

STRAY = [(b"junk", b"not a state record"), (b"snap/x", b"RNWCLOG")]


def test_records_that_are_not_state_records_are_skipped_and_counted() -> None:
    position = restore_from_records(STRAY, FakeDetector())
    assert position.skipped == 2 and position.generation == -1


@pytest.mark.kafka
@pytest.mark.faults
@pytest.mark.timeout(180)
def test_a_stray_changelog_record_is_skipped_and_the_state_still_restores(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=1)
    events = stream_events(n_keys=3, per_key=20, seed=4)
    messages = messages_of(events)
    half = len(messages) // 2
    config = config_for(kafka_bootstrap, topics, make_group(), max_batch_size=8, snapshot_every=3)
    consumed = "rnnwatch_events_consumed_total"

    def stray() -> None:  # someone else writes to the changelog while the service is down
        run_sync(publish(kafka_bootstrap, topics["changelog"], STRAY))

    _, second = serve_in_two_runs(config, messages, between=stray, make_detector=FakeDetector, n_features=1)
    assert second.metrics.value("rnnwatch_changelog_records_skipped_total") == 2
    assert second.metrics.value(consumed) == len(messages) - half  # resumed where the state left off
    got = read_scores(kafka_bootstrap, topics["output"], len(messages))
    assert_scores_match(got, offline_scores(FakeDetector(), events))  # the state was restored, not started over


@pytest.mark.kafka
@pytest.mark.faults
@pytest.mark.timeout(120)
def test_a_restore_past_its_time_bound_stops_the_service_and_readiness_says_why(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=1)
    run_sync(publish(kafka_bootstrap, topics["changelog"], STRAY))
    run_sync(publish(kafka_bootstrap, topics["input"], messages_of([("a", 1.0, 1.0)])))
    config = config_for(kafka_bootstrap, topics, make_group(), restore_timeout_seconds=1e-4)

    async def scenario() -> Service:
        service = Service(config, make_detector=FakeDetector, n_features=1)
        async with service:
            with pytest.raises(ServiceError, match="did not finish within restore_timeout_seconds"):
                async with asyncio.timeout(60):
                    await service.run()
            report = service.health.readiness()
            assert not report.ok and "restore_timeout_seconds" in report.reason
        return service

    service = run_sync(scenario())
    assert service.metrics.value("rnnwatch_events_consumed_total") == 0
