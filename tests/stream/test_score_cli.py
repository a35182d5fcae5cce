"""`rnnwatch score`: offline scores equal the Detector fed one event at a time, in time order."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rnncore.artifact import save_artifact
from rnncore.config import ModelConfig
from rnncore.detector import Detector
from rnncore.model import ModelWeights
from stream.cli import main


def _setup(tmp_path: Path) -> tuple[Path, Path, ModelWeights, list[dict[str, object]]]:
    weights = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=3)
    model = tmp_path / "model"
    save_artifact(model, weights)
    rng = np.random.default_rng(0)
    events = [{"key": f"s{i % 3}", "time": float(i), "values": [float(v)]} for i, v in enumerate(rng.normal(size=300))]
    events[250]["values"] = [40.0]
    shuffled = [events[i] for i in rng.permutation(len(events))]  # file order != time order
    log = tmp_path / "events.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in shuffled))
    return log, model, weights, events


def test_scores_match_one_event_at_a_time(tmp_path: Path) -> None:
    log, model, weights, events = _setup(tmp_path)
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--logs", str(log), "--model", str(model), "--out", str(out), "--batch-size", "64"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows) and len(rows) == 300
    detector = Detector(weights)
    expected = [
        float(detector.step([e["key"]], [e["time"]], np.array(e["values"], np.float32)).scores[0]) for e in events
    ]
    np.testing.assert_allclose([r["score"] for r in rows], expected, atol=1e-6)
    assert all(r["anomaly"] == (r["score"] >= 0.99) for r in rows)


def test_csv_output_and_threshold(tmp_path: Path) -> None:
    log, model, _, _ = _setup(tmp_path)
    out = tmp_path / "scores.csv"
    args = ["score", "--logs", str(log), "--model", str(model), "--out", str(out), "--threshold", "0.0"]
    assert main(args) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["key", "time", "score", "anomaly", "status"]
    assert {r["anomaly"] for r in rows} == {"1"} and rows[0]["status"] == "ok"


def test_missing_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, _, _, _ = _setup(tmp_path)
    code = main(["score", "--logs", str(log), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o.jsonl")])
    assert code == 2 and "rnnwatch score" in capsys.readouterr().err
