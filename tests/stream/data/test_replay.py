"""Topic replay against the real broker: offset and time ranges, key fallback, malformed messages counted."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from stream.data.eventlog import EventRecord, ReadSummary, encode_record
from stream.data.replay import read_topic, replay_topic
from stream.errors import ReplayError

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes, int, int]]) -> None:
    """Send (key, value, partition, timestamp_ms) in order and wait for every ack."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, partition, stamp in messages:
            await (await producer.send(topic, value=value, key=key, partition=partition, timestamp_ms=stamp))
    finally:
        await producer.stop()


BASE_MS = int(time.time() * 1000) - 3_600_000  # an hour ago: inside any default retention


def _events(n: int) -> list[EventRecord]:
    return [EventRecord(f"s{i % 4}", 1_700_000_000.0 + i, (float(i),)) for i in range(n)]


async def test_replays_everything_then_offset_and_time_ranges(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2, prefix="replay")
    events = _events(40)
    await _produce(
        kafka_bootstrap,
        topic,
        [(r.key.encode(), encode_record(r), i % 2, BASE_MS + 1000 * i) for i, r in enumerate(events)],
    )
    records, summary = await read_topic(kafka_bootstrap, topic)
    assert sorted(records, key=lambda r: r.time) == events
    assert summary.accepted == 40 and not summary.skipped

    # offsets are per partition: offsets [5, 10) of both partitions = events 10..19
    records, _ = await read_topic(kafka_bootstrap, topic, start_offset=5, end_offset=10)
    assert sorted(r.values[0] for r in records) == [float(i) for i in range(10, 20)]

    # times bound the Kafka timestamps, both ends inclusive
    start, end = (BASE_MS + 1000 * 12) / 1000, (BASE_MS + 1000 * 21) / 1000
    records, _ = await read_topic(kafka_bootstrap, topic, start_time=start, end_time=end)
    assert sorted(r.values[0] for r in records) == [float(i) for i in range(12, 22)]

    records, _ = await read_topic(kafka_bootstrap, topic, partitions=[1], start_time=end + 3600)
    assert records == []


async def test_counts_malformed_messages_and_uses_the_message_key(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=1, prefix="replay-bad")
    good = orjson.dumps({"time": "2023-11-14T22:13:20Z", "values": [1.0, 2.0]})
    await _produce(
        kafka_bootstrap,
        topic,
        [
            (b"from-key", good, 0, BASE_MS),
            (None, b"not json", 0, BASE_MS + 1),
            (None, orjson.dumps({"key": "k", "time": 1, "values": [1.0]}), 0, BASE_MS + 2),
            (None, orjson.dumps({"time": 1, "value": 1.0}), 0, BASE_MS + 3),
        ],
    )
    summary = ReadSummary()
    records = [r async for r in replay_topic(kafka_bootstrap, topic, summary=summary)]
    assert records == [EventRecord("from-key", 1_700_000_000.0, (1.0, 2.0))]
    assert summary.skipped == {"invalid_json": 1, "wrong_vector_length": 1, "missing_field": 1}
    assert summary.examples[0] == f"{topic}[0]@1: invalid_json"


async def test_refuses_unknown_topics_partitions_and_inverted_ranges(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=1, prefix="replay-err")
    with pytest.raises(ReplayError, match="does not exist"):
        await read_topic(kafka_bootstrap, topic + "-missing")
    with pytest.raises(ReplayError, match="no partitions"):
        await read_topic(kafka_bootstrap, topic, partitions=[3])
    with pytest.raises(ReplayError, match="before"):
        await read_topic(kafka_bootstrap, topic, start_time=10.0, end_time=5.0)


@pytest.mark.torch
async def test_train_command_replays_a_topic(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from rnncore.model.artifact import load_artifact
    from stream.cli import main
    from stream.data.synthetic import generate_fleet

    topic = make_topic(partitions=2, prefix="replay-train")
    records = list(generate_fleet(4, 200, anomalies_per_stream=0, seed=3).records())
    await _produce(
        kafka_bootstrap,
        topic,
        [(r.key.encode(), encode_record(r), i % 2, BASE_MS + i) for i, r in enumerate(records)],
    )
    argv = ["train", "--topic", topic, "--bootstrap-servers", kafka_bootstrap, "--out", str(tmp_path / "m")]
    argv += ["--hidden-size", "8", "--epochs", "1", "--bptt", "16", "--segment-length", "64", "--no-progress"]
    argv += ["--min-validation-steps", "0"]
    code = await asyncio.to_thread(main, argv)  # the command runs its own event loop
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "800 accepted" in captured.err
    assert load_artifact(tmp_path / "m").metadata["training"]["data"]["topic"] == topic
    # Offsets bound every partition: [100, 300) of 2 x 400 messages is 2 x 200 events.
    bounded = [*argv[:5], "--out", str(tmp_path / "b"), *argv[7:], "--from-offset", "100", "--to-offset", "300"]
    assert await asyncio.to_thread(main, bounded) == 0
    assert "400 accepted" in capsys.readouterr().err
    data = load_artifact(tmp_path / "b").metadata["training"]["data"]
    assert (data["start_offset"], data["end_offset"]) == (100, 300)
    empty = make_topic(partitions=1, prefix="replay-empty")
    code = await asyncio.to_thread(
        main, ["train", "--topic", empty, "--bootstrap-servers", kafka_bootstrap, "--out", str(tmp_path / "e")]
    )
    assert code == 2 and "no usable events" in capsys.readouterr().err
