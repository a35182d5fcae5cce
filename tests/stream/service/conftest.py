"""Fixtures of the service's tests: a broker of a test's own, and a service set up on a watched model artifact."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rnncore.model.artifact import load_artifact, save_artifact
from rnncore.model.weights import ModelWeights
from stream.local_broker import LocalBroker
from tests.kafka_helpers import MakeServiceTopics
from tests.stream.service_harness import ServeArtifact, ServedArtifact, config_for


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker this test may stop and resume (the session's broker is shared)."""
    broker = LocalBroker(run_dir=tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def serve_artifact(
    kafka_bootstrap: str,
    make_service_topics: MakeServiceTopics,
    make_group: Callable[[], str],
    tmp_path: Path,
) -> ServeArtifact:
    """Factory: save ``weights`` as ``version`` in tmp_path/model, load it back, configure a service on fresh
    topics that polls it every ``poll_seconds``."""

    def make(weights: ModelWeights, version: str, *, partitions: int = 1, poll_seconds: float = 0.05) -> ServedArtifact:
        model_dir = tmp_path / "model"
        topics = make_service_topics(partitions)
        save_artifact(model_dir, weights, {"version": version})
        config = config_for(
            kafka_bootstrap, topics, make_group(), model_dir=str(model_dir), model_poll_seconds=poll_seconds
        )
        return ServedArtifact(topics, model_dir, load_artifact(model_dir), config)

    return make
