"""The service's partition processor runs the seasonal ScoringPipeline as it runs a Detector: the scores it
publishes are the pipeline's, and its changelog (snapshots and deltas) restores every stage's state."""

from __future__ import annotations

import numpy as np
import orjson

from rnncore.calibration import ScoringParams
from rnncore.contract import StreamScorer
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.stages.novelty import NoveltyParams
from rnncore.stages.pipeline import PipelineSettings, ScoringPipeline
from rnncore.stages.seasonality import SeasonalityParams
from stream.service.changelog import restore_from_records
from stream.service.codec import EventDecoder, decode_score
from stream.service.metrics import ServiceMetrics
from stream.service.partition import PartitionProcessor, PartitionSettings
from tests.stream.service.test_partition import Message

SETTINGS = PipelineSettings(
    detector_scoring=ScoringParams(warmup_events=20, tail_floor=1e-100),
    seasonality=SeasonalityParams(min_count=3),
    seasonal_scoring=ScoringParams(short_window=5, warmup_events=20, tail_floor=1e-100),
    novelty=NoveltyParams(refractory_events=50, ceiling_hold=20),
)


def _pipeline() -> ScoringPipeline:
    return ScoringPipeline(ModelWeights.random(ModelConfig(hidden_size=8, norm_window=200), seed=4), SETTINGS)


def _events(n: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        key = f"s{i % 3}"
        t = 1.7e9 + 1800.0 * (i // 3)
        out.append((key, t, float(np.float32(np.sin(2 * np.pi * t / 86400) + 0.1 * rng.standard_normal()))))
    return out


def test_partition_publishes_the_pipeline_scores_and_its_changelog_restores_every_stage() -> None:
    settings = PartitionSettings(output_topic="out", dead_letter_topic="dlq", changelog_topic="log", publish_all=True,
                                 anomaly_threshold=0.9, snapshot_every=3, changelog_chunk_bytes=50_000,
                                 idle_ttl_seconds=None)  # fmt: skip
    pipeline = _pipeline()
    service_side: StreamScorer = pipeline  # the service's protocol, checked by mypy
    processor = PartitionProcessor(0, service_side, EventDecoder(1), settings, ServiceMetrics())
    events = _events(900)
    events[700] = (events[700][0], events[700][1], 9.0)
    log: list[tuple[bytes, bytes | None]] = []
    published: list[float] = []
    for start in range(0, len(events), 40):
        part = events[start : start + 40]
        payloads = [orjson.dumps({"key": k, "time": t, "value": v}) for k, t, v in part]
        messages = [Message("in", 0, start + i, b"k", p) for i, p in enumerate(payloads)]
        outcome = processor.process(messages)
        log.extend((r.key or b"", r.value) for r in outcome.changelog)
        published.extend(decode_score(r.value or b"")["score"] for r in outcome.all_records() if r.topic == "out")
    direct = _pipeline()
    expected = [float(direct.step([k], np.array([t]), np.array([v])).scores[0]) for k, t, v in events]
    np.testing.assert_allclose(published, expected, rtol=0, atol=1e-6)
    assert max(expected) > 0.5
    restored = _pipeline()
    restore_from_records(log, restored)
    assert restored.snapshot() == pipeline.snapshot()
