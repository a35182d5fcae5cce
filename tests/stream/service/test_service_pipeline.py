"""`scoring_pipeline = "seasonal"` against the real broker: the service publishes the online ScoringPipeline's
scores (the NAB-tuned pipeline of issue 6), and a changelog written by one pipeline is refused, with a
clear error, by a service configured for the other."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.stages.pipeline import ScoringPipeline
from stream.cli import main
from stream.errors import ConfigError, ServiceError
from stream.service.app import Service, detector_factory
from stream.service.config import ServiceConfig
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.service_harness import (
    config_for,
    messages_of,
    offline_scores,
    publish,
    read_scores,
    serve_until_consumed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=5)


def _daily_events(n_keys: int, per_key: int) -> list[tuple[str, float, float]]:
    """Interleaved 10-minute readings with a daily cycle (so the hour slots fill past warm-up), one spike each."""
    rng = np.random.default_rng(1)
    events = []
    for step in range(per_key):
        t = 1.7e9 + 600.0 * step
        for k in range(n_keys):
            value = 3.0 * np.sin(2 * np.pi * t / 86400 + k) + 0.2 * rng.standard_normal()
            events.append((f"pump-{k}", t + k, float(np.float32(value + (6.0 if step == per_key - 40 else 0.0)))))
    return events


def test_the_seasonal_pipeline_is_served_and_a_changed_pipeline_is_refused_at_restore(
    make_service_topics: MakeServiceTopics, kafka_bootstrap: str, make_group: Callable[[], str]
) -> None:
    topics = make_service_topics(partitions=2)
    events = _daily_events(n_keys=4, per_key=600)
    run_sync(publish(kafka_bootstrap, topics["input"], messages_of(events)))
    group = make_group()
    config = config_for(kafka_bootstrap, topics, group, scoring_pipeline="seasonal", max_batch_size=500)
    serve_until_consumed(config, len(events), weights=WEIGHTS)
    got = read_scores(kafka_bootstrap, topics["output"], len(events))
    expected = offline_scores(ScoringPipeline(WEIGHTS, max_streams=100), events)
    assert sorted(got) == sorted(expected)
    for key, records in got.items():
        np.testing.assert_allclose([r["score"] for r in records], expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
    assert max(float(s.max()) for s in expected.values()) > 0.5  # past warm-up: the comparison is not of zeros

    # The same changelog under the bare Detector: another state layout, refused with a clear error, not mixed in.
    run_sync(publish(kafka_bootstrap, topics["input"], messages_of([("pump-0", 1.8e9, 1.0)])))
    plain = config_for(kafka_bootstrap, topics, group, scoring_pipeline="detector")

    async def run_plain() -> None:
        async with Service(plain, weights=WEIGHTS) as service:
            await service.run()

    with pytest.raises(ServiceError, match="scoring_pipeline"):
        run_sync(run_plain())


def test_scoring_pipeline_setting_is_validated() -> None:
    with pytest.raises(ConfigError):
        ServiceConfig(scoring_pipeline="magic")  # type: ignore[arg-type]
    two_features = ModelWeights.random(ModelConfig(n_features=2, hidden_size=4), seed=0)
    with pytest.raises(ServiceError, match="single-value"):
        detector_factory(two_features, ServiceConfig(scoring_pipeline="seasonal"))
    assert isinstance(detector_factory(WEIGHTS, ServiceConfig(scoring_pipeline="seasonal"))(), ScoringPipeline)


def test_serve_refuses_the_seasonal_pipeline_for_a_multi_feature_model(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    save_artifact(tmp_path / "m", ModelWeights.random(ModelConfig(n_features=2, hidden_size=4), seed=0))
    argv = ["serve", "--model-dir", str(tmp_path / "m"), "--scoring-pipeline", "seasonal", "--metrics-port", "0"]
    assert main(argv) == 2
    assert "cannot start: scoring_pipeline 'seasonal' scores single-value streams" in capfd.readouterr().err
