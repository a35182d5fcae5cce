"""The plot's re-scoring gives `rnnwatch score`'s own scores, and labelled plots tell true from false flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.cli import main
from stream.evaluation.rescore import rescore
from stream.evaluation.score_plot import plot_scored


def _model_and_log(tmp_path: Path) -> tuple[Path, Path]:
    model, log = tmp_path / "model", tmp_path / "events.jsonl"
    save_artifact(model, ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=4))
    rng = np.random.default_rng(1)
    rows = [{"key": f"s{i % 3}", "time": float(i // 3), "value": float(v)} for i, v in enumerate(rng.normal(size=900))]
    rows[700]["value"] = 30.0
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model, log


def test_rescoring_a_few_streams_gives_the_scores_rnnwatch_score_wrote(tmp_path: Path) -> None:
    model, log = _model_and_log(tmp_path)
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--logs", str(log), "--model-dir", str(model), "--out", str(out)]) == 0
    written: dict[str, list[float]] = {}
    for line in out.read_text().splitlines():
        row = json.loads(line)
        written.setdefault(row["key"], []).append(row["score"])
    recorder = rescore(model, [log], ["s1", "s2"], 0.99)
    assert set(recorder.streams) == {"s1", "s2"}
    for key in ("s1", "s2"):
        np.testing.assert_allclose(recorder.streams[key].scores, written[key], atol=1e-6)


def test_labelled_plot_refuses_labels_that_do_not_match_the_events(tmp_path: Path) -> None:
    model, log = _model_and_log(tmp_path)
    recorder = rescore(model, [log], ["s1"], 0.5)
    events = len(recorder.streams["s1"].scores)
    window = np.zeros(events, dtype=bool)
    window[200:260] = True
    png = plot_scored(tmp_path / "p.png", recorder, ["s1"], 0.5, "v1", {"s1": window}, {"s1": "F1 0.5"}, "a title")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="labels for"):
        plot_scored(tmp_path / "q.png", recorder, ["s1"], 0.5, "v1", {"s1": window[:-1]})
