"""Idle-stream TTL is measured per stream against a watermark that a far-future event cannot jump."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stream.service.codec import EventDecoder
from stream.service.metrics import ServiceMetrics
from stream.service.partition import PartitionProcessor
from stream.service.watermark import EventTimeWatermark
from tests.stream.fake_detector import FakeDetector
from tests.stream.service.test_partition import Message, _event, _settings


def test_the_watermark_is_the_median_of_recent_times_and_never_goes_back() -> None:
    watermark = EventTimeWatermark(window=8, min_samples=4)
    watermark.observe(np.array([1.0, 2.0, 1e12]))
    assert watermark.value() == -np.inf  # too few samples: one early outlier cannot set it
    watermark.observe(np.array([3.0, 4.0]))
    assert watermark.value() == 3.0
    watermark.observe(np.array([1e12, 1e12, 5.0, 6.0, 7.0]))  # the ring wraps; 3 of 8 are far in the future
    assert watermark.value() == 6.5
    watermark.observe(np.zeros(6))  # far in the past: the watermark holds
    assert watermark.value() == 6.5
    with pytest.raises(ValueError, match="min_samples"):
        EventTimeWatermark(window=4, min_samples=5)


def test_one_far_future_event_does_not_evict_the_other_streams_but_idle_ones_go() -> None:
    settings = dataclasses.replace(_settings(snapshot_every=1), idle_ttl_seconds=100.0)
    processor = PartitionProcessor(0, FakeDetector(), EventDecoder(1), settings, ServiceMetrics())
    offset = 0

    def batch(events: list[tuple[str, float]]) -> None:
        nonlocal offset
        messages = [Message("in", 0, offset + i, k.encode(), _event(k, t, 1.0)) for i, (k, t) in enumerate(events)]
        offset += len(messages)
        processor.process(messages)

    for step in range(20):  # ten live streams, one event a second each
        batch([(f"s{k}", 1000.0 + step) for k in range(10)])
    batch([("idle", 500.0)])  # last seen long before the others
    batch([("future", 1e12)])  # one event from a broken clock
    for step in range(20, 25):
        batch([(f"s{k}", 1000.0 + step) for k in range(10)])
    keys = set(processor.detector.table.keys())
    assert {f"s{k}" for k in range(10)} <= keys and "future" in keys  # evicting is per stream
    assert "idle" not in keys  # older than watermark - ttl: evicted at a snapshot
    assert processor.watermark.value() < 2000.0
