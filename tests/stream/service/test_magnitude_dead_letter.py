"""A value past the magnitude bound is dead-lettered with reason ``magnitude`` and counted; the stream's next good
event scores as on a stream that never saw it (real broker, the real Detector)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rnncore.calibration import ScoringParams
from rnncore.detector import Detector
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.service.poisoned_streams import WEIGHTS
from tests.stream.service_harness import (
    config_for,
    event,
    publish,
    read_all,
    read_scores,
    reasons,
    serve_until_consumed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.timeout(180)]


def test_a_huge_value_is_dead_lettered_as_magnitude_and_the_next_event_scores(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=1)
    normal = np.random.default_rng(2).standard_normal(60)
    messages = []
    for i, value in enumerate([*normal[:40], None, *normal[40:], 30.0]):
        t = 1000.0 + i
        if value is None:  # the poisoned stream gets 1e20; the control stream nothing at that time
            messages.append((b"poisoned", event("poisoned", t, 1e20)))
            continue
        messages += [(b"poisoned", event("poisoned", t, float(value))), (b"control", event("control", t, float(value)))]
    run_sync(publish(kafka_bootstrap, topics["input"], messages))
    config = config_for(kafka_bootstrap, topics, make_group())

    def detector() -> Detector:
        return Detector(WEIGHTS, max_streams=100, scoring=ScoringParams(warmup_events=5, short_window=3))

    service = serve_until_consumed(config, len(messages), make_detector=detector, n_features=1)
    dead = run_sync(read_all(kafka_bootstrap, topics["dlq"], 1))
    scores = read_scores(kafka_bootstrap, topics["output"], len(messages) - 1)
    assert reasons(dead) == ["magnitude"]
    assert dead[0].value == event("poisoned", 1040.0, 1e20)
    assert service.metrics.value("rnnwatch_events_dead_lettered_total", {"reason": "magnitude"}) == 1
    poisoned, control = scores["poisoned"], scores["control"]
    assert len(poisoned) == len(control) == 61
    assert [s["score"] for s in poisoned] == [s["score"] for s in control]  # the next event on, too
    after = poisoned[40]  # the event right after the dead-lettered one: a forecast in the stream's own range
    assert abs(after["mean"]) < 10 and 0 < after["scale"] < 10, after
    assert poisoned[-1]["score"] > 0.5  # the spike of 30 at the end stands out
