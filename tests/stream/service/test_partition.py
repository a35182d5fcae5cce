"""One partition's batch processing: scores, dead letters with reasons, changelog records, offsets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from stream.service.changelog import restore_from_records
from stream.service.codec import REASON_HEADER, EventDecoder, decode_score, header_value
from stream.service.metrics import ServiceMetrics
from stream.service.partition import PartitionProcessor, PartitionSettings
from tests.stream.fake_detector import FakeDetector


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0  # none: not observed


def _settings(publish_all: bool = True, snapshot_every: int = 3) -> PartitionSettings:
    return PartitionSettings(
        output_topic="out",
        dead_letter_topic="dlq",
        changelog_topic="log",
        publish_all=publish_all,
        anomaly_threshold=0.5,
        snapshot_every=snapshot_every,
        changelog_chunk_bytes=10_000,
        idle_ttl_seconds=None,
    )


def _messages(payloads: Sequence[bytes | None], start: int = 0) -> list[Message]:
    return [Message("in", 2, start + i, b"k", p) for i, p in enumerate(payloads)]


def _event(key: str, t: float, v: float) -> bytes:
    return orjson.dumps({"key": key, "time": t, "value": v})


def test_batch_scores_good_events_and_dead_letters_bad_ones() -> None:
    metrics = ServiceMetrics()
    processor = PartitionProcessor(2, FakeDetector(max_streams=2), EventDecoder(1), _settings(), metrics)
    outcome = processor.process(
        _messages(
            [
                _event("a", 1, 1.0),
                b"{oops",
                _event("b", 2, 9.0),
                _event("bad", 3, 1.0),
                _event("c", 4, 1.0),
                _event("a", 5, 1.0),
            ],
            start=10,
        )
    )
    by_topic: dict[str, list] = {}
    for record in outcome.all_records():
        by_topic.setdefault(record.topic, []).append(record)
    scores = [decode_score(r.value or b"") for r in by_topic["out"]]
    assert [(s["key"], s["offset"]) for s in scores] == [("a", 10), ("b", 12), ("a", 15)]
    assert all(s["partition"] == 2 and s["model_version"] == "fake-1" for s in scores)
    reasons = [(header_value(r.headers, REASON_HEADER), r.value) for r in by_topic["dlq"]]
    assert reasons == [
        ("invalid_json", b"{oops"),
        ("invalid_key", _event("bad", 3, 1.0)),
        ("stream_table_full", _event("c", 4, 1.0)),
    ]
    assert all(r.partition == 2 for r in by_topic["log"])
    assert (outcome.next_offset, outcome.consumed, outcome.scored, outcome.dead_lettered) == (16, 6, 3, 3)
    assert metrics.value("rnnwatch_events_consumed_total") == 6
    assert metrics.value("rnnwatch_events_scored_total") == 3
    assert metrics.value("rnnwatch_events_dead_lettered_total", {"reason": "stream_table_full"}) == 1


def test_anomalies_only_mode_publishes_scores_at_or_above_the_threshold() -> None:
    metrics = ServiceMetrics()
    processor = PartitionProcessor(0, FakeDetector(), EventDecoder(1), _settings(publish_all=False), metrics)
    outcome = processor.process(_messages([_event("a", 1, 1.0), _event("a", 2, 1.0), _event("a", 3, 50.0)]))
    scores = [decode_score(r.value or b"") for r in outcome.all_records() if r.topic == "out"]
    assert [s["offset"] for s in scores] == [2] and scores[0]["anomaly"] is True
    assert metrics.value("rnnwatch_anomalies_total") == 1


def test_messages_below_the_next_offset_are_skipped_as_already_processed() -> None:
    detector = FakeDetector()
    processor = PartitionProcessor(0, detector, EventDecoder(1), _settings(), ServiceMetrics())
    processor.process(_messages([_event("a", 1, 1.0), _event("a", 2, 2.0)]))
    again = processor.process(_messages([_event("a", 1, 1.0), _event("a", 2, 2.0), _event("a", 3, 3.0)]))
    assert again.consumed == 1 and again.next_offset == 3
    assert detector.state["a"][0] == 3


def test_changelog_records_restore_the_partition_state() -> None:
    detector = FakeDetector()
    processor = PartitionProcessor(0, detector, EventDecoder(1), _settings(snapshot_every=2), ServiceMetrics())
    log: list[tuple[bytes, bytes | None]] = []
    offset = 0
    for batch in range(7):
        payloads = [_event(f"s{(batch * 3 + i) % 5}", batch, float(i)) for i in range(4)]
        outcome = processor.process(_messages(payloads, start=offset))
        offset = outcome.next_offset
        log.extend((r.key or b"", r.value) for r in outcome.changelog)
    restored = FakeDetector()
    position = restore_from_records(log, restored)
    assert restored.state == detector.state
    assert position.next_offset == offset == 28


def test_a_batch_of_only_dead_letters_writes_no_state() -> None:
    processor = PartitionProcessor(0, FakeDetector(), EventDecoder(1), _settings(), ServiceMetrics())
    processor.process(_messages([_event("a", 1, 1.0)]))
    outcome = processor.process(_messages([b"x", None], start=1))
    assert {r.topic for r in outcome.all_records()} == {"dlq"} and outcome.next_offset == 3


def test_forecast_is_a_number_for_one_feature_and_a_list_for_several() -> None:
    from rnncore.detector import Detector
    from rnncore.model.config import ModelConfig
    from rnncore.model.weights import ModelWeights

    for n_features in (1, 2):
        weights = ModelWeights.random(ModelConfig(n_features=n_features, hidden_size=4), seed=1)
        processor = PartitionProcessor(
            0, Detector(weights, max_streams=10), EventDecoder(n_features), _settings(), ServiceMetrics()
        )
        value = 1.0 if n_features == 1 else [1.0, 2.0]
        payload = orjson.dumps({"key": "a", "time": 1.0, "value": value})
        outcome = processor.process(_messages([payload, payload.replace(b'"time":1.0', b'"time":2.0')]))
        first, second = (decode_score(r.value or b"") for r in outcome.all_records() if r.topic == "out")
        if n_features == 1:
            assert isinstance(second["mean"], float) and isinstance(second["scale"], float)
        else:
            assert len(second["mean"]) == 2 and len(second["scale"]) == 2
        assert first["nll"] is None and isinstance(second["nll"], float)


def test_published_records_carry_the_scorers_contributions_for_several_features_only() -> None:
    from rnncore.contract import EventRecord
    from rnncore.model.config import ModelConfig
    from rnncore.model.weights import ModelWeights
    from rnncore.scorer import build_scorer
    from rnncore.stages.envelope import EnvelopeParams, fit_envelope

    rng = np.random.default_rng(0)
    for n_features in (1, 3):
        weights = ModelWeights.random(ModelConfig(n_features=n_features, hidden_size=4), seed=1)
        train = [EventRecord("a", float(t), tuple(rng.normal(size=n_features).tolist())) for t in range(600)]
        scorer = build_scorer(weights, fit_envelope(train, EnvelopeParams(min_history=0)), max_streams=10)
        processor = PartitionProcessor(0, scorer, EventDecoder(n_features), _settings(), ServiceMetrics())
        value = 1.0 if n_features == 1 else [1.0, 2.0, 9.0]
        outcome = processor.process(_messages([orjson.dumps({"key": "a", "time": 1e4, "value": value})]))
        [record] = (decode_score(r.value or b"") for r in outcome.all_records() if r.topic == "out")
        if n_features == 1:
            assert "contributions" not in record
        else:
            assert len(record["contributions"]) == 3 and abs(sum(record["contributions"]) - 1.0) < 1e-5


def test_the_service_exports_what_the_default_threshold_means() -> None:
    from rnncore.model.config import ModelConfig
    from rnncore.model.weights import ModelWeights
    from rnncore.scorer import build_scorer

    metrics = ServiceMetrics()
    scorer = build_scorer(ModelWeights.random(ModelConfig(hidden_size=4), seed=1), max_streams=4)
    PartitionProcessor(0, scorer, EventDecoder(1), _settings(), metrics)
    assert metrics.value("rnnwatch_false_alarm_target", {"threshold": "0.99"}) == 0.005


def test_ingest_latency_is_measured_from_the_kafka_timestamp_not_the_event_time() -> None:
    """Replayed history has event times days old; the service's own delay is from the record's Kafka timestamp."""
    import time

    metrics = ServiceMetrics()
    processor = PartitionProcessor(0, FakeDetector(), EventDecoder(1), _settings(), metrics)
    stamp = int((time.time() - 2.0) * 1000)  # Kafka received them 2 s ago
    days_old = [_event("a", 1_000 + i, 1.0) for i in range(4)]  # event time: 1970
    processor.process([Message("in", 0, i, b"k", p, stamp) for i, p in enumerate(days_old)])
    count = metrics.value("rnnwatch_ingest_to_score_latency_seconds_count")
    assert count == 4 and 1.5 < metrics.value("rnnwatch_ingest_to_score_latency_seconds_sum") / count < 10
    assert metrics.value("rnnwatch_event_to_score_latency_seconds_bucket", {"le": "30.0"}) == 0  # event time: old


def test_merged_polls_publish_every_score_and_one_delta_that_restores_the_state() -> None:
    """Group commit (issue 15): polls kept for one transaction give their scores in order, the last offset, and
    one state delta of the rows as they are after the last poll, which restores the same state."""
    detector = FakeDetector()
    processor = PartitionProcessor(0, detector, EventDecoder(1), _settings(snapshot_every=50), ServiceMetrics())
    first = processor.process(_messages([_event("a", 1, 1.0), _event("b", 1, 2.0)]))  # finished: a snapshot
    log = [(r.key or b"", r.value) for r in first.changelog]
    second = processor.process(_messages([_event("b", 2, 3.0), b"{oops"], start=2), finish=False)
    third = processor.process(_messages([_event("c", 3, 4.0), _event("a", 4, 5.0)], start=4), finish=False)
    assert second.changelog == [] and third.changelog == []
    merged = second.merged_with(third)
    processor.finish(merged)
    assert merged.next_offset == 6 and merged.consumed == 4 and merged.scored == 3 and merged.dead_lettered == 1
    assert merged.scores is not None and merged.scores.keys == [b"b", b"c", b"a"]
    assert len(merged.changelog) == 1  # one delta for both polls
    log.extend((r.key or b"", r.value) for r in merged.changelog)
    restored = FakeDetector()
    position = restore_from_records(log, restored)
    assert restored.state == detector.state and position.next_offset == 6
