"""Bidirectional (look-ahead) models are refused by every causal path with a clear message: `rnnwatch serve` at
start, hot reload (counted as refused, the old model goes on), and `rnnwatch bench nab`; an
attention model, which is causal, is served and scores like the offline Detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnncore.detector import Detector
from rnncore.errors import ArtifactError, NonCausalModelError
from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.cli import main
from stream.service.app import Service
from stream.service.reload import ModelWatcher
from tests.kafka_helpers import run_sync
from tests.stream.service.test_service_kafka import SCORING, _published
from tests.stream.service_harness import (
    ServeArtifact,
    messages_of,
    publish,
    read_all,
    running,
    scores_by_key,
    stream_events,
    wait_until,
)

PLAIN = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=3)
BIDIRECTIONAL = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8, direction="bidirectional"), seed=4)
ATTENTION = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8, attention_window=4), seed=5, scale=0.5)


def test_serve_refuses_a_bidirectional_artifact_at_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_artifact(tmp_path / "model", BIDIRECTIONAL)
    assert main(["serve", "--model-dir", str(tmp_path / "model"), "--bootstrap-servers", "127.0.0.1:1"]) == 2
    message = capsys.readouterr().err  # `rnnwatch serve` logs to stderr with its own handler
    assert "rnnwatch serve" in message and "needs a causal model" in message and "bidirectional" in message


def test_the_model_watcher_refuses_a_bidirectional_artifact_once(tmp_path: Path) -> None:
    save_artifact(tmp_path, PLAIN)
    watcher = ModelWatcher(tmp_path, poll_seconds=0)
    save_artifact(tmp_path, BIDIRECTIONAL)
    with pytest.raises(ArtifactError, match="model reload.*needs a causal model") as error:
        watcher.load_if_changed()
    assert isinstance(error.value, NonCausalModelError)
    assert watcher.load_if_changed() is None  # not retried until the artifact changes again


def test_bench_nab_refuses_bidirectional(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nab", "--bidirectional", "--data", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "NAB forbids look-ahead" in err and "rnnwatch score --bidirectional" in err


def _offline(weights: ModelWeights, events: list[tuple[str, float, float]]) -> dict[str, np.ndarray]:
    detector = Detector(weights, max_streams=1000, scoring=SCORING)
    out: dict[str, list[list[float]]] = {}
    for key, t, v in events:
        r = detector.step([key], np.array([t]), np.array([v], dtype=np.float32))
        out.setdefault(key, []).append([float(r.scores[0]), float(r.nll[0]), float(r.mean[0]), float(r.scale[0])])
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_attention_model_is_served_and_reloads_to_bidirectional_or_plain_are_refused(
    serve_artifact: ServeArtifact, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topics, model_dir, started_with, config = serve_artifact(ATTENTION, "attn", partitions=2)
    events = stream_events(n_keys=5, per_key=30)

    async def scenario() -> Service:
        make = lambda: Detector(started_with, max_streams=1000, scoring=SCORING)  # noqa: E731
        service = Service(config, started_with, make_detector=make)
        refused = lambda: service.metrics.value("rnnwatch_model_reloads_total", {"result": "refused"})  # noqa: E731
        async with running(service) as task:
            await publish(kafka_bootstrap, topics["input"], messages_of(events[:70]))
            await wait_until(lambda: service.metrics.value("rnnwatch_events_scored_total") >= 70, task, "first part")
            save_artifact(model_dir, BIDIRECTIONAL, {"version": "look-ahead"})
            await wait_until(lambda: refused() == 1, task, "the bidirectional artifact's refusal")
            save_artifact(model_dir, PLAIN, {"version": "plain"})  # no ring: another state layout
            await wait_until(lambda: refused() == 2, task, "the plain artifact's refusal")
            await publish(kafka_bootstrap, topics["input"], messages_of(events[70:]))
            await wait_until(
                lambda: service.metrics.value("rnnwatch_events_scored_total") >= len(events),
                task,
                "scoring after the refusals",
            )
        return service

    service = run_sync(scenario())
    assert service.metrics.value("rnnwatch_model_reloads_total", {"result": "loaded"}) == 0
    refusals = [r.getMessage() for r in caplog.records if "model reload refused" in r.getMessage()]
    assert len(refusals) == 2 and "needs a causal model" in refusals[0] and "cannot take over" in refusals[1]
    got = scores_by_key(run_sync(read_all(kafka_bootstrap, topics["output"], len(events))))
    assert {s["model_version"] for scores in got.values() for s in scores} == {"attn"}
    expected = _offline(ATTENTION, events)
    for key, scores in got.items():
        np.testing.assert_allclose(_published(scores), expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
