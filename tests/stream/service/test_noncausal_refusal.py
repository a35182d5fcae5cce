"""Bidirectional (look-ahead) models are refused by every causal path with a clear message: `rnnwatch serve` at
start, hot reload (counted as refused, the old model goes on), and `rnnwatch bench nab`; an
attention model, which is causal, is served and scores like the offline Detector."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rnncore.errors import ArtifactError, NonCausalModelError
from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.cli import main
from stream.service.app import Service
from stream.service.reload import ModelWatcher
from tests.stream.service_harness import (
    ServeArtifact,
    assert_matches_offline,
    feed,
    make_detector_of,
    offline_rows,
    reload_refusals,
    reloads,
    serve_through,
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


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_attention_model_is_served_and_reloads_to_bidirectional_or_plain_are_refused(
    serve_artifact: ServeArtifact, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve_artifact(ATTENTION, "attn", partitions=2)
    events = stream_events(n_keys=5, per_key=30)

    async def scenario(service: Service, task: asyncio.Task[None]) -> None:
        await feed(service, task, events[:70], 70, "first part")
        save_artifact(served.model_dir, BIDIRECTIONAL, {"version": "look-ahead"})
        await wait_until(lambda: reloads(service, "refused") == 1, task, "the bidirectional artifact's refusal")
        save_artifact(served.model_dir, PLAIN, {"version": "plain"})  # no ring: another state layout
        await wait_until(lambda: reloads(service, "refused") == 2, task, "the plain artifact's refusal")
        await feed(service, task, events[70:], len(events), "scoring after the refusals")

    service = serve_through(served, scenario)
    assert reloads(service, "loaded") == 0
    refusals = reload_refusals(caplog)
    assert len(refusals) == 2 and "needs a causal model" in refusals[0] and "cannot take over" in refusals[1]
    got = served.published_scores(len(events))
    assert {s["model_version"] for scores in got.values() for s in scores} == {"attn"}
    assert_matches_offline(got, offline_rows(make_detector_of(ATTENTION)(), events))
