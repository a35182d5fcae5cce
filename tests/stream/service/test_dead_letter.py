"""Dead letters always fit the dead-letter topic: a near-limit message is cut, marked and the service goes on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from stream.errors import DeadLetterLimitError
from stream.service.codec import REASON_HEADER, SOURCE_HEADER, dead_letter_headers, header_value
from stream.service.dead_letter import (
    ORIGINAL_KEY_SIZE_HEADER,
    ORIGINAL_OFFSET_HEADER,
    ORIGINAL_PARTITION_HEADER,
    ORIGINAL_SIZE_HEADER,
    TRUNCATED_HEADER,
    dead_letter_budget,
    fit_dead_letter,
    record_bytes,
)
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.fake_detector import FakeDetector
from tests.stream.service_harness import config_for, event, publish, read_all, reasons, serve_until_consumed

HEADERS = dead_letter_headers("oversized", "too big", "in", 2, 77)


async def _publish_large(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    """Send one record of up to 2 MiB (the client's own default limit is 1 MiB; the broker's decides)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 << 20)
    await producer.start()
    try:
        await (await producer.send(topic, value=value, key=key))
    finally:
        await producer.stop()


def test_a_dead_letter_that_fits_is_left_alone() -> None:
    key, value, headers = fit_dead_letter(b"k", b"v" * 100, HEADERS, 2, 77, max_bytes=10_000)
    assert (key, value, headers) == (b"k", b"v" * 100, HEADERS)


@pytest.mark.parametrize("limit", [4096, 65_536, 1_048_588])
def test_a_too_large_dead_letter_is_cut_to_the_limit_and_says_so(limit: int) -> None:
    value = bytes(range(256)) * (limit // 256 + 10)
    key, cut, headers = fit_dead_letter(b"sensor", value, HEADERS, 2, 77, max_bytes=limit)
    assert record_bytes(key, cut, headers) <= limit
    assert key == b"sensor" and cut is not None and value.startswith(cut) and len(cut) > limit - 400
    assert header_value(headers, TRUNCATED_HEADER) == "true"
    assert header_value(headers, ORIGINAL_SIZE_HEADER) == str(len(value))
    assert header_value(headers, ORIGINAL_KEY_SIZE_HEADER) == "6"
    assert (header_value(headers, ORIGINAL_PARTITION_HEADER), header_value(headers, ORIGINAL_OFFSET_HEADER)) == (
        "2",
        "77",
    )
    assert header_value(headers, REASON_HEADER) == "oversized"


def test_a_key_larger_than_the_limit_is_cut_too() -> None:
    key, value, headers = fit_dead_letter(b"k" * 10_000, b"v" * 10, HEADERS, 0, 1, max_bytes=4096)
    assert record_bytes(key, value, headers) <= 4096
    assert key == b"k" * len(key or b"") and value == b""
    assert header_value(headers, ORIGINAL_KEY_SIZE_HEADER) == "10000"


def test_a_limit_too_small_for_the_headers_is_refused_with_the_setting_to_raise() -> None:
    with pytest.raises(DeadLetterLimitError, match=r"max\.message\.bytes"):
        fit_dead_letter(b"k", b"v" * 1000, HEADERS, 0, 1, max_bytes=300)
    with pytest.raises(DeadLetterLimitError, match=r"max\.message\.bytes"):
        dead_letter_budget(1000)
    assert dead_letter_budget(None) == 1_048_588


@pytest.mark.kafka
@pytest.mark.faults
@pytest.mark.timeout(180)
def test_a_message_near_the_broker_limit_is_dead_lettered_cut_and_the_next_event_scores(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=1)
    # 1,048,500 bytes: accepted by the broker (message.max.bytes 1,048,588), too large once headers are added.
    huge = b'{"key": "a", "time": 5, "value": 1, "pad": "' + b"x" * (1_048_500 - 46) + b'"}'
    assert len(huge) == 1_048_500
    before = [(b"a", event("a", float(t), 1.0)) for t in range(3)]
    after = [(b"a", event("a", 10.0, 2.0)), (b"b", event("b", 11.0, 3.0))]
    run_sync(publish(kafka_bootstrap, topics["input"], before))
    run_sync(_publish_large(kafka_bootstrap, topics["input"], b"a", huge))
    run_sync(publish(kafka_bootstrap, topics["input"], after))
    config = config_for(kafka_bootstrap, topics, make_group())
    total = len(before) + 1 + len(after)
    service = serve_until_consumed(config, total, make_detector=FakeDetector, n_features=1)
    assert service.metrics.value("rnnwatch_events_dead_lettered_total", {"reason": "oversized"}) == 1
    assert service.metrics.value("rnnwatch_events_scored_total") == len(before) + len(after)
    (dead,) = run_sync(read_all(kafka_bootstrap, topics["dlq"], 1))
    headers = list(dead.headers)
    assert reasons([dead]) == ["oversized"]
    assert header_value(headers, TRUNCATED_HEADER) == "true"
    assert header_value(headers, ORIGINAL_SIZE_HEADER) == str(len(huge))
    assert header_value(headers, ORIGINAL_PARTITION_HEADER) == "0"
    assert header_value(headers, ORIGINAL_OFFSET_HEADER) == str(len(before))
    assert header_value(headers, SOURCE_HEADER) == f"{topics['input']}/0/{len(before)}"
    assert dead.key == b"a" and huge.startswith(dead.value) and len(huge) - 1024 < len(dead.value) < len(huge)
    scores = run_sync(read_all(kafka_bootstrap, topics["output"], len(before) + len(after)))
    assert sorted(r.key for r in scores) == [b"a"] * 4 + [b"b"]  # the events after the huge one were scored
