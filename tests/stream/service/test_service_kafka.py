"""The service against the real broker: parity with the offline detector, dead letters, restart restore."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from aiokafka.partitioner import DefaultPartitioner

from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.errors import ServiceError
from stream.service.app import Service
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.fake_detector import FakeDetector
from tests.stream.service_harness import (
    assert_matches_offline,
    assert_scores_match,
    config_for,
    event,
    make_detector_of,
    messages_of,
    offline_rows,
    offline_scores,
    publish,
    read_all,
    reasons,
    run_service_until,
    scores_by_key,
    serve_in_two_runs,
    serve_until_consumed,
    stream_events,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=3)
_detector = make_detector_of(WEIGHTS)


def _offline(events: list[tuple[str, float, float]]) -> dict[str, np.ndarray]:
    """Per-key [score, nll, mean, scale] rows of the same events fed one at a time through one offline Detector."""
    return offline_rows(_detector(), events)


def _service_args(kind: str) -> dict[str, Any]:
    return {"weights": WEIGHTS, "make_detector": _detector}


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_scores_through_kafka_equal_offline_detector_scores(
    make_service_topics: MakeServiceTopics,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    make_group: Callable[[], str],
    guarantee: str,
) -> None:
    topics = make_service_topics(partitions=3)
    topics["output"] = make_topic(partitions=2, prefix="out")
    events = stream_events(n_keys=7, per_key=30)
    run_sync(publish(kafka_bootstrap, topics["input"], messages_of(events)))
    config = config_for(kafka_bootstrap, topics, make_group(), guarantee=guarantee, max_batch_size=50)
    service = serve_until_consumed(config, len(events), **_service_args("detector"))
    metric = service.metrics.value
    assert metric("rnnwatch_events_scored_total") == len(events) and metric("rnnwatch_active_streams") == 7
    assert metric("rnnwatch_state_bytes") > 0 and metric("rnnwatch_batch_size_events_count") >= 1
    assert (
        metric(
            "rnnwatch_model_info",
            {"cell": "gru", "hidden_size": "8", "num_layers": "1", "n_features": "1", "version": "unknown"},
        )
        == 1
    )
    assert sum(metric("rnnwatch_consumer_lag_messages", {"partition": str(p)}) for p in range(3)) == 0
    records = run_sync(read_all(kafka_bootstrap, topics["output"], len(events)))
    assert len(records) == len(events)
    placed_by_key = {r.partition == DefaultPartitioner()(r.key, [0, 1], [0, 1]) for r in records}
    assert placed_by_key == {True}  # same partition as a plain keyed send: a stream's scores stay together
    got = scores_by_key(records)
    assert_matches_offline(got, _offline(events))
    assert max(s["score"] for scores in got.values() for s in scores) > 0.1  # parity is not vacuous (past warm-up)


@pytest.mark.faults
def test_poison_messages_are_dead_lettered_with_reasons_while_good_ones_are_scored(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=1)
    topics["changelog"] = topics["changelog"] + "-created-by-the-service"
    events = stream_events(n_keys=3, per_key=10)
    good = messages_of(events)
    poison = {
        "invalid_json": b'{"key": "p", "time": 1, ',
        "missing_field": b'{"key": "p", "value": 1}',
        "bad_type": b'{"key": "p", "time": 1, "value": "high"}',
        "non_finite_value": b'{"key": "p", "time": 1, "value": NaN}',
        "wrong_vector_length": event("p", 1.0, [1.0, 2.0]),
        "oversized": b'{"key": "p", "time": 1, "value": 1, "pad": "' + b"x" * 600 + b'"}',
        "key_too_long": event("p" * 100, 1.0, 1.0),
    }
    messages = list(good)
    for i, payload in enumerate(poison.values()):
        messages.insert(3 + 4 * i, (b"p", payload))
    run_sync(publish(kafka_bootstrap, topics["input"], messages))
    config = config_for(kafka_bootstrap, topics, make_group(), max_message_bytes=512, max_key_bytes=64)
    service = serve_until_consumed(config, len(messages), **_service_args("detector"))
    dead = run_sync(read_all(kafka_bootstrap, topics["dlq"], len(poison)))
    scores = run_sync(read_all(kafka_bootstrap, topics["output"], len(good)))
    assert sorted(r or "" for r in reasons(dead)) == sorted(poison)
    assert {r.value for r in dead} == set(poison.values())
    assert len(scores) == len(good)
    for reason in poison:
        assert service.metrics.value("rnnwatch_events_dead_lettered_total", {"reason": reason}) == 1, reason
    assert service.metrics.value("rnnwatch_events_scored_total") == len(good)


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_restart_restores_state_so_scores_equal_an_uninterrupted_run(
    make_service_topics: MakeServiceTopics,
    kafka_bootstrap: str,
    make_group: Callable[[], str],
    guarantee: str,
) -> None:
    topics = make_service_topics(partitions=2)
    events = stream_events(n_keys=6, per_key=24, seed=1)
    messages = messages_of(events)
    half = len(messages) // 2
    config = config_for(
        kafka_bootstrap,
        topics,
        make_group(),
        guarantee=guarantee,
        max_batch_size=16,
        snapshot_every=3,
        changelog_chunk_bytes=2048,
    )
    first, second = serve_in_two_runs(config, messages, **_service_args("detector"))
    assert first.metrics.value("rnnwatch_events_consumed_total") == half
    assert second.metrics.value("rnnwatch_events_consumed_total") == len(messages) - half
    assert second.metrics.value("rnnwatch_restore_seconds_count") >= 1
    records = run_sync(read_all(kafka_bootstrap, topics["output"], len(messages)))
    assert len(records) == len(messages)
    assert_matches_offline(scores_by_key(records), _offline(events))


@pytest.mark.faults
def test_rebalance_to_a_second_replica_hands_state_over_exactly_once(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=4)
    events = stream_events(n_keys=12, per_key=20, seed=2)
    messages = messages_of(events)
    half = len(messages) // 2
    group = make_group()
    config_a = config_for(kafka_bootstrap, topics, group, max_batch_size=16, snapshot_every=4)
    config_b = dataclasses.replace(config_a, instance_id="test-b")

    async def wait_for(condition: Callable[[], bool], tasks: list[asyncio.Task[None]]) -> None:
        async with asyncio.timeout(60):
            while not condition():
                for task in tasks:
                    if task.done():
                        task.result()
                await asyncio.sleep(0.05)

    async def scenario() -> tuple[float, float]:
        a = Service(config_a, make_detector=FakeDetector, n_features=1)
        b = Service(config_b, make_detector=FakeDetector, n_features=1)
        consumed = "rnnwatch_events_consumed_total"
        async with a:
            task_a = asyncio.create_task(a.run())
            await publish(kafka_bootstrap, topics["input"], messages[:half])
            await wait_for(lambda: a.metrics.value(consumed) >= half, [task_a])
            async with b:
                task_b = asyncio.create_task(b.run())
                await wait_for(
                    lambda: (
                        b.metrics.value("rnnwatch_assigned_partitions") > 0
                        and a.metrics.value("rnnwatch_assigned_partitions") < 4
                    ),
                    [task_a, task_b],
                )
                await publish(kafka_bootstrap, topics["input"], messages[half:])
                await wait_for(
                    lambda: a.metrics.value(consumed) + b.metrics.value(consumed) >= len(messages), [task_a, task_b]
                )
                b.request_stop()
                await task_b
            a.request_stop()
            await task_a
        return a.metrics.value(consumed), b.metrics.value(consumed)

    consumed_a, consumed_b = run_sync(scenario())
    assert consumed_a + consumed_b == len(messages) and consumed_b > 0
    records = run_sync(read_all(kafka_bootstrap, topics["output"], len(messages)))
    assert len(records) == len(messages)
    got = scores_by_key(records)
    assert_scores_match(got, offline_scores(FakeDetector(), events))


def test_a_missing_input_topic_fails_at_start_with_an_actionable_error(
    kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = {"input": f"absent-{make_group()}", "output": "o", "dlq": "d", "changelog": "c"}
    config = config_for(kafka_bootstrap, topics, make_group())
    with pytest.raises(ServiceError, match="does not exist.*create it"):
        run_sync(run_service_until(config, lambda service: True, **_service_args("detector")))
