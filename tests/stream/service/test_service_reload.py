"""Hot model reload, the event archive and checkpoint failures, against the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnncore.model.artifact import METADATA_FILE, save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.data.eventlog import read_event_logs
from stream.errors import ServiceError, StreamError
from stream.service.app import Service
from stream.service.publisher import BatchPublisher
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.service_harness import (
    ServeArtifact,
    assert_matches_offline,
    config_for,
    feed,
    make_detector_of,
    messages_of,
    offline_rows,
    publish,
    reload_refusals,
    reloads,
    running,
    serve_through,
    stream_events,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

OLD = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=3)
NEW = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=4)
BIGGER = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=16), seed=5)


def test_a_new_artifact_is_taken_between_batches_and_the_state_is_kept(serve_artifact: ServeArtifact) -> None:
    served = serve_artifact(OLD, "v1", partitions=2, poll_seconds=0.0)
    events = stream_events(n_keys=5, per_key=40)
    first, second = events[:100], events[100:]

    async def scenario(service: Service, task: asyncio.Task[None]) -> None:
        await feed(service, task, first, len(first), "the first part")
        (served.model_dir / "junk").write_bytes(b"")  # unrelated files do not trigger anything
        service.request_reload()
        await asyncio.sleep(0.3)
        assert reloads(service, "loaded") == 0  # model.json unchanged
        save_artifact(served.model_dir, NEW, {"version": "v2"})
        service.request_reload()
        await wait_until(lambda: reloads(service, "loaded") == 1, task, "reload")
        await feed(service, task, second, len(events), "the second part")

    service = serve_through(served, scenario)
    assert (
        service.metrics.value(
            "rnnwatch_model_info",
            {"version": "v2", "cell": "gru", "hidden_size": "8", "num_layers": "1", "n_features": "1"},
        )
        == 1
    )
    offline = make_detector_of(OLD)()
    before = offline_rows(offline, first)
    offline.reload(NEW)
    after = offline_rows(offline, second)
    got = served.published_scores(len(events))
    assert_matches_offline(got, {k: np.concatenate([before[k], after[k]]) for k in before})
    versions = [s["model_version"] for s in got["sensor-0"]]
    assert versions == ["v1"] * (len(first) // 5) + ["v2"] * (len(second) // 5)


@pytest.mark.faults
def test_corrupt_and_incompatible_artifacts_are_refused_and_counted_while_scoring_goes_on(
    serve_artifact: ServeArtifact, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve_artifact(OLD, "v1", partitions=1)
    topics, model_dir = served.topics, served.model_dir
    events = stream_events(n_keys=3, per_key=20)

    async def scenario(service: Service, task: asyncio.Task[None]) -> None:
        await publish(kafka_bootstrap, topics["input"], messages_of(events[:30]))
        (model_dir / METADATA_FILE).write_text("{ not json")
        await wait_until(lambda: reloads(service, "refused") == 1, task, "the corrupt artifact's refusal")
        save_artifact(model_dir, BIGGER, {"version": "v3"})
        await wait_until(lambda: reloads(service, "refused") == 2, task, "the incompatible artifact's refusal")
        await feed(service, task, events[30:], len(events), "scoring after the refusals")
        await asyncio.sleep(0.3)
        assert reloads(service, "refused") == 2  # a refused version is not retried on every poll

    service = serve_through(served, scenario)
    assert reloads(service, "loaded") == 0
    refusals = reload_refusals(caplog)
    assert len(refusals) == 2
    assert "model.json" in refusals[0] and "H=16" in refusals[1]
    got = served.published_scores(len(events))
    assert {s["model_version"] for scores in got.values() for s in scores} == {"v1"}


def test_scored_events_are_archived_for_retraining(
    make_service_topics: MakeServiceTopics,
    kafka_bootstrap: str,
    make_group: Callable[[], str],
    tmp_path: Path,
) -> None:
    topics = make_service_topics(partitions=2)
    events = stream_events(n_keys=4, per_key=25)
    bad = [(b"x", b"not json")]
    archive = tmp_path / "archive"
    config = config_for(kafka_bootstrap, topics, make_group(), archive_dir=str(archive), archive_max_bytes=2000)

    async def scenario() -> Service:
        service = Service(config, OLD, make_detector=make_detector_of(OLD))
        async with running(service) as task:
            await publish(kafka_bootstrap, topics["input"], messages_of(events) + bad)
            await wait_until(
                lambda: service.metrics.value("rnnwatch_events_archived_total") >= len(events), task, "archiving"
            )
        return service

    service = run_sync(scenario())
    assert service.metrics.value("rnnwatch_events_archived_total") == len(events)
    files = sorted(archive.glob("*.jsonl"))
    assert len(files) > 1 and not list(archive.glob("*.part"))  # rolled by size, and closed on stop
    records, summary = read_event_logs([archive])
    assert summary.accepted == len(events) and not summary.skipped
    got = sorted((r.key, r.time, r.values) for r in records)
    expected = sorted((k, t, (float(np.float32(v)),)) for k, t, v in events)
    assert got == expected


@pytest.mark.faults
def test_a_failed_changelog_write_is_counted_and_stops_the_service(
    make_service_topics: MakeServiceTopics,
    kafka_bootstrap: str,
    make_group: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = make_service_topics(partitions=1)
    events = stream_events(n_keys=2, per_key=10)
    original = BatchPublisher.send_all

    async def failing_send_all(self: BatchPublisher, records: Any, scores: Any = ()) -> None:
        if any(r.topic == topics["changelog"] for r in records):
            raise StreamError("injected: the changelog partition is unavailable")
        await original(self, records, scores)

    monkeypatch.setattr(BatchPublisher, "send_all", failing_send_all)
    config = config_for(kafka_bootstrap, topics, make_group())

    async def scenario() -> Service:
        service = Service(config, OLD, make_detector=make_detector_of(OLD))
        async with service:
            await publish(kafka_bootstrap, topics["input"], messages_of(events))
            with pytest.raises(ServiceError, match="changelog partition is unavailable"):
                async with asyncio.timeout(60):
                    await service.run()
        return service

    service = run_sync(scenario())
    assert service.metrics.value("rnnwatch_checkpoint_failures_total") == 1
    assert service.health.readiness().ok is False
