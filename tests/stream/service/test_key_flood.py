"""A flood of new stream keys fills a partition's state table (issue 17's run: 200k new keys hit the table-full
path): the keys past the table's size are dead-lettered as ``stream_table_full``, the service stays up, and the
streams that already had a row score as on a clean run (real broker, the product's scorer)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from stream.service.codec import SOURCE_HEADER, header_value
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.service.test_poison_cases import STREAMS, WEIGHTS, _clean_run, _good_events
from tests.stream.service_harness import (
    config_for,
    event,
    publish,
    published_rows,
    read_all,
    read_scores,
    reasons,
    serve_until_consumed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.timeout(240)]

TABLE = 64  # state rows of the partition
FLOOD = 2_000  # new keys, one event each


def test_a_flood_of_new_keys_is_dead_lettered_past_the_table_and_the_known_streams_score_as_on_a_clean_run(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=1)
    good = _good_events()
    messages = [(k.encode(), event(k, t, v)) for k, t, v in good]
    at = len(messages) // 2  # the flood comes in the middle of the known streams' events
    flood = [(f"new-{i}".encode(), event(f"new-{i}", 1040.5, 1.0)) for i in range(FLOOD)]
    run_sync(publish(kafka_bootstrap, topics["input"], [*messages[:at], *flood, *messages[at:]]))
    config = config_for(
        kafka_bootstrap, topics, make_group(), warmup_events=20, max_streams_per_partition=TABLE, max_batch_size=100
    )
    total = len(messages) + FLOOD
    service = serve_until_consumed(config, total, weights=WEIGHTS, timeout=120)
    assert service._failure is None

    taken = TABLE - len(STREAMS)  # the rows the flood could still claim
    full = FLOOD - taken
    assert service.metrics.value("rnnwatch_events_dead_lettered_total", {"reason": "stream_table_full"}) == full
    dead = run_sync(read_all(kafka_bootstrap, topics["dlq"], full))
    assert len(dead) == full and set(reasons(dead)) == {"stream_table_full"}
    offsets = sorted(int(str(header_value(list(r.headers), SOURCE_HEADER)).rsplit("/", 1)[1]) for r in dead)
    assert offsets == list(range(at + taken, at + FLOOD))  # the first keys got the free rows, the rest none

    scored = read_scores(kafka_bootstrap, topics["output"], len(messages) + taken)
    assert len(scored) == TABLE
    clean = _clean_run(good, config)
    for key in STREAMS:
        got = published_rows(scored[key])
        assert got.shape == clean[key].shape, key
        np.testing.assert_allclose(got, clean[key], rtol=1e-5, atol=1e-5, err_msg=key)
