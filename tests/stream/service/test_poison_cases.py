"""Issue 17's acceptance for every poison case at once, through the product's own scorer (what `rnnwatch serve`
builds from the weights): the service stays up, each bad record is in the dead-letter topic once with its reason
and source offset, and every good event of every stream, the ones right after a poison included, scores as on a
clean run (the same good events alone, offline).

The cases sit inside three live streams (their JSON key or Kafka key is the stream's): the wire rules of the codec,
a 1,100-deep nesting (item 2: it crashed every restart), a message near the broker's size limit (item 3: its dead
letter did not fit), values far outside the stream's scale (item 4: 1e20 blinded the stream) and event times far in
the future and past (item 5: one far-future event evicted every other stream; those are scored, not dead-lettered,
and no other stream's clock moves).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from aiokafka import AIOKafkaProducer

from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.service.poisoned_streams import (
    SPIKE_AT,
    STEPS,
    STREAMS,
    WEIGHTS,
    assert_scored_as_on_a_clean_run,
    good_events,
    read_dead_letters,
)
from tests.stream.service_harness import (
    config_for,
    event,
    read_scores,
    serve_until_consumed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.timeout(240)]

POISON_AT = 40  # the poison comes after this many good events of each stream
NEAR_LIMIT = 1_048_500  # accepted by the broker (message.max.bytes 1,048,588), too large once dead-letter headers go on

Message = tuple[bytes | None, bytes | None]
Poison = tuple[str, bytes, bytes | None]  # expected dead-letter reason ("" for scored), Kafka key, payload


def _poison() -> list[Poison]:
    """(expected dead-letter reason, Kafka key, payload); reason "" for events that are scored, not dead-lettered."""
    t = 1000.0 + POISON_AT
    head = b'{"key": "sensor-2", "time": 1040.5, "value": 1, "pad": "'
    near_limit = head + b"x" * (NEAR_LIMIT - len(head) - 2) + b'"}'
    assert len(near_limit) == NEAR_LIMIT
    return [
        ("invalid_json", b"sensor-0", b'{"key": "sensor-0", "time": 1040.5, '),
        ("invalid_json", b"sensor-1", b'{"key":"sensor-1","time":1040.5,"value":' + b"[" * 1100 + b"]" * 1100 + b"}"),
        ("invalid_json", b"sensor-2", b"\xff\xfe\x00 not json"),
        ("missing_field", b"sensor-0", b'{"key": "sensor-0", "value": 1}'),
        ("missing_field", b"sensor-1", None),  # an empty record (a tombstone)
        ("bad_type", b"sensor-2", b'{"key": "sensor-2", "time": 1040.5, "value": "high"}'),
        ("bad_type", b"sensor-0", b"[1, 2, 3]"),
        ("non_finite_value", b"sensor-1", b'{"key": "sensor-1", "time": 1040.5, "value": NaN}'),
        ("non_finite_value", b"sensor-2", b'{"key": "sensor-2", "time": 1040.5, "value": 1e999}'),
        ("wrong_vector_length", b"sensor-0", event("sensor-0", t + 0.5, [1.0, 2.0])),
        ("key_too_long", b"sensor-1", event("s" * 300, t + 0.5, 1.0)),
        ("oversized", b"sensor-2", near_limit),
        ("magnitude", b"sensor-0", event("sensor-0", t + 0.5, 1e20)),  # past the absolute bound
        ("magnitude", b"sensor-1", event("sensor-1", t + 0.5, 1e15)),  # past the bound relative to its scale
        ("", b"broken-clock", event("broken-clock", 1e12, 1.0)),  # far future: scored, moves no other clock
        ("", b"stopped-clock", event("stopped-clock", 0.0, 1.0)),  # far past: the same
    ]


def _messages(
    good: Sequence[tuple[str, float, float]], poison: Sequence[tuple[str, bytes, bytes | None]]
) -> list[Message]:
    messages: list[Message] = [(k.encode(), event(k, t, v)) for k, t, v in good]
    at = POISON_AT * len(STREAMS)
    return [*messages[:at], *((key, payload) for _, key, payload in poison), *messages[at:]]


async def _publish_in_order(bootstrap: str, topic: str, messages: Sequence[Message]) -> None:
    """Send in order with room for the near-limit record (the client's own default limit is 1 MiB)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=2 << 20)
    await producer.start()
    try:
        for key, value in messages:
            await (await producer.send(topic, value=value, key=key))
    finally:
        await producer.stop()


def test_every_poison_case_is_dead_lettered_with_its_reason_and_every_stream_scores_as_on_a_clean_run(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=1)
    good, poison = good_events(), _poison()
    messages = _messages(good, poison)
    run_sync(_publish_in_order(kafka_bootstrap, topics["input"], messages))
    config = config_for(
        kafka_bootstrap,
        topics,
        make_group(),
        warmup_events=20,
        idle_ttl_seconds=100.0,
        snapshot_every=1,
        max_batch_size=10,
    )
    service = serve_until_consumed(config, len(messages), weights=WEIGHTS, timeout=120)
    assert service._failure is None  # it stayed up: stopped by the harness once everything was consumed

    dead_lettered = [(reason, key, payload) for reason, key, payload in poison if reason]
    first = POISON_AT * len(STREAMS)  # the offset of the first poison record
    expected = {first + i: (reason, payload) for i, (reason, _, payload) in enumerate(poison) if reason}
    dead = read_dead_letters(kafka_bootstrap, topics["dlq"], len(dead_lettered))
    assert len(dead) == len(dead_lettered)
    for letter in dead:
        want_reason, payload = expected.pop(letter.offset)
        assert letter.reason == want_reason, (letter.offset, letter.reason)
        if payload is None:
            assert not letter.value
        else:  # the near-limit record is cut to fit the dead-letter topic; every other one is whole
            cut = want_reason == "oversized" and letter.value is not None and payload.startswith(letter.value)
            assert letter.value == payload or cut
    assert expected == {}
    for reason in {r for r, _, _ in dead_lettered}:
        count = sum(1 for r, _, _ in dead_lettered if r == reason)
        assert service.metrics.value("rnnwatch_events_dead_lettered_total", {"reason": reason}) == count, reason

    scored = read_scores(kafka_bootstrap, topics["output"], len(good) + 2)
    assert sorted(scored) == sorted([*STREAMS, "broken-clock", "stopped-clock"])
    for key, got in assert_scored_as_on_a_clean_run(scored, good, config).items():
        assert got.shape == (STEPS, 4), key
        after = got[POISON_AT]  # the stream's next good event after the poison
        assert abs(after[2]) < 10 and 0 < after[3] < 10, (key, after)
        assert got[SPIKE_AT, 0] > 0.5, (key, got[SPIKE_AT])  # not blinded: the spike after the poison stands out
