"""A flood of new stream keys fills a partition's state table (issue 17's run: 200k new keys hit the table-full
path): the keys past the table's size are dead-lettered as ``stream_table_full``, the service stays up, and the
streams that already had a row score as on a clean run (real broker, the product's scorer)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.service import poisoned_streams as poisoned
from tests.stream.service_harness import (
    config_for,
    event,
    publish,
    read_scores,
    serve_until_consumed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.timeout(240)]

TABLE = 64  # state rows of the partition
FLOOD = 2_000  # new keys, one event each


def test_a_flood_of_new_keys_is_dead_lettered_past_the_table_and_the_known_streams_score_as_on_a_clean_run(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=1)
    good = poisoned.good_events()
    messages = [(k.encode(), event(k, t, v)) for k, t, v in good]
    at = len(messages) // 2  # the flood comes in the middle of the known streams' events
    flood = [(f"new-{i}".encode(), event(f"new-{i}", 1040.5, 1.0)) for i in range(FLOOD)]
    run_sync(publish(kafka_bootstrap, topics["input"], [*messages[:at], *flood, *messages[at:]]))
    config = config_for(
        kafka_bootstrap, topics, make_group(), warmup_events=20, max_streams_per_partition=TABLE, max_batch_size=100
    )
    total = len(messages) + FLOOD
    service = serve_until_consumed(config, total, weights=poisoned.WEIGHTS, timeout=120)
    assert service._failure is None

    taken = TABLE - len(poisoned.STREAMS)  # the rows the flood could still claim
    full = FLOOD - taken
    assert service.metrics.value("rnnwatch_events_dead_lettered_total", {"reason": "stream_table_full"}) == full
    dead = poisoned.read_dead_letters(kafka_bootstrap, topics["dlq"], full)
    assert len(dead) == full and {letter.reason for letter in dead} == {"stream_table_full"}
    offsets = sorted(letter.offset for letter in dead)
    assert offsets == list(range(at + taken, at + FLOOD))  # the first keys got the free rows, the rest none

    scored = read_scores(kafka_bootstrap, topics["output"], len(messages) + taken)
    assert len(scored) == TABLE
    poisoned.assert_scored_as_on_a_clean_run(scored, good, config)
