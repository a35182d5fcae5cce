"""`rnnwatch score`: offline scores equal the scorer serve builds, fed one event at a time, in time order."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rnncore.detector import Detector
from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.scorer import build_scorer
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
    detector = build_scorer(weights)  # what rnnwatch score and serve build
    expected = [
        float(detector.step([e["key"]], [e["time"]], np.array(e["values"], np.float32)).scores[0]) for e in events
    ]
    np.testing.assert_allclose([r["score"] for r in rows], expected, atol=1e-6)
    assert all(r["anomaly"] == (r["score"] >= 0.99) for r in rows)
    rarity = np.array([r["rarity"] for r in rows])  # -log10(1 - score), unbounded: same order where score < 1
    scores = np.array([r["score"] for r in rows])
    below = scores < 0.999
    np.testing.assert_allclose(rarity[below], -np.log10(1.0 - scores[below]), atol=2e-3)
    assert ((rarity >= 2.0) == (scores >= 0.99)).all()


def test_csv_output_and_threshold(tmp_path: Path) -> None:
    log, model, _, _ = _setup(tmp_path)
    out = tmp_path / "scores.csv"
    args = ["score", "--logs", str(log), "--model", str(model), "--out", str(out), "--threshold", "0.0"]
    assert main(args) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["key", "time", "score", "rarity", "anomaly", "status"]
    assert {r["anomaly"] for r in rows} == {"1"} and rows[0]["status"] == "ok"


def test_missing_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, _, _, _ = _setup(tmp_path)
    code = main(["score", "--logs", str(log), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o.jsonl")])
    assert code == 2 and "rnnwatch score" in capsys.readouterr().err


def test_logs_of_another_width_than_the_model_get_one_line_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, _, _ = _setup(tmp_path)
    log = tmp_path / "wide.jsonl"
    log.write_text(json.dumps({"key": "a", "time": 1, "value": [1.0, 2.0]}) + "\n")
    out = tmp_path / "o.jsonl"
    assert main(["score", "--logs", str(log), "--model", str(model), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 value(s) per event" in err and "takes 1" in err and "Traceback" not in err
    assert not out.exists()


def _bidirectional_model(tmp_path: Path) -> tuple[Path, ModelWeights]:
    weights = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8, direction="bidirectional"), seed=3)
    model = tmp_path / "bidirectional"
    save_artifact(model, weights)
    return model, weights


@pytest.mark.torch
def test_bidirectional_scores_equal_the_scorer_and_are_marked_non_causal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnncore.training.bidirectional import score_records
    from stream.data.eventlog import read_event_logs

    log, _, _, _ = _setup(tmp_path)
    model, weights = _bidirectional_model(tmp_path)
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--bidirectional", "--logs", str(log), "--model", str(model), "--out", str(out)]) == 0
    assert "NON-CAUSALLY" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 300 and all(r["causal"] is False for r in rows)
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    records, _ = read_event_logs([log])
    expected = score_records(weights, records)
    by_time = {r.time: float(s) for r, s in zip(records, expected.scores, strict=True)}
    np.testing.assert_allclose([r["score"] for r in rows], [by_time[r["time"]] for r in rows], atol=1e-6)
    csv_out = tmp_path / "scores.csv"
    assert main(["score", "--bidirectional", "--logs", str(log), "--model", str(model), "--out", str(csv_out)]) == 0
    with csv_out.open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["key", "time", "score", "rarity", "anomaly", "status", "causal"]
    assert table[0]["causal"] == "0"


def test_bidirectional_artifact_without_the_flag_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, _, _, _ = _setup(tmp_path)
    model, _ = _bidirectional_model(tmp_path)
    out = tmp_path / "o.jsonl"
    assert main(["score", "--logs", str(log), "--model", str(model), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs a causal model" in err and "--bidirectional" in err and not out.exists()


def test_causal_artifact_with_the_flag_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, model, _, _ = _setup(tmp_path)
    out = tmp_path / "o.jsonl"
    assert main(["score", "--bidirectional", "--logs", str(log), "--model", str(model), "--out", str(out)]) == 2
    assert "needs a bidirectional model" in capsys.readouterr().err


def test_attention_artifact_scores_online_like_the_detector(tmp_path: Path) -> None:
    log, _, _, events = _setup(tmp_path)
    model = tmp_path / "attention"
    weights = ModelWeights.random(ModelConfig(hidden_size=8, attention_window=4), seed=1)
    save_artifact(model, weights)
    out = tmp_path / "o.jsonl"
    assert main(["score", "--logs", str(log), "--model", str(model), "--out", str(out), "--batch-size", "7"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    detector = Detector(weights)
    expected = [
        float(detector.step([e["key"]], [e["time"]], np.array(e["values"], np.float32)).scores[0]) for e in events
    ]
    np.testing.assert_array_equal([r["score"] for r in rows], np.array(expected, dtype=np.float32))
    assert "causal" not in rows[0]


def _seasonal_log(tmp_path: Path) -> tuple[Path, Path, ModelWeights, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Two streams, 10 minutes apart, with a daily cycle over nine days and a spike; the log is shuffled."""
    weights = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=3)
    model = tmp_path / "model"
    save_artifact(model, weights)
    rng = np.random.default_rng(1)
    series = {}
    for k, key in enumerate(["a", "b"]):
        t = 1.7e9 + 600.0 * np.arange(1300) + 7.0 * k
        x = np.sin(2 * np.pi * t / 86400) + 0.1 * rng.normal(size=t.size)
        x[1100 + 50 * k] += 6.0
        series[key] = (t, x)
    events = [
        {"key": key, "time": float(t), "values": [float(v)]}
        for key, (ts, xs) in series.items()
        for t, v in zip(ts, xs, strict=True)
    ]
    log = tmp_path / "events.jsonl"
    log.write_text("".join(json.dumps(events[i]) + "\n" for i in rng.permutation(len(events))))
    return log, model, weights, series


def test_seasonal_pipeline_scores_equal_the_batch_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rnncore.stages.pipeline import PipelineSettings
    from stream.evaluation.nab_data import NabFile
    from tests.pipeline_reference import batch_scores

    log, model, weights, series = _seasonal_log(tmp_path)
    out = tmp_path / "scores.jsonl"
    args = ["score", "--logs", str(log), "--model", str(model), "--out", str(out), "--pipeline", "seasonal"]
    assert main([*args, "--batch-size", "37"]) == 0
    assert "through the seasonal pipeline" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    files = [NabFile(key, t.astype(np.int64).astype("datetime64[s]"), x) for key, (t, x) in series.items()]
    expected = batch_scores(files, weights, PipelineSettings())  # the whole-array reference, default settings
    for key in series:
        got = [r["score"] for r in rows if r["key"] == key]
        np.testing.assert_allclose(got, expected[key], rtol=0, atol=1e-6)
        assert max(got) > 0.5
    bare = tmp_path / "bare.jsonl"
    assert main(["score", "--logs", str(log), "--model", str(model), "--out", str(bare)]) == 0
    assert [json.loads(line)["score"] for line in bare.read_text().splitlines()] != [r["score"] for r in rows]


def test_seasonal_pipeline_refuses_multi_feature_models_and_bidirectional(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "wide.jsonl"  # logs as wide as the model, so the pipeline's own refusal is what is tested
    log.write_text("".join(json.dumps({"key": "a", "time": i, "value": [1.0, 2.0]}) + "\n" for i in range(5)))
    model = tmp_path / "wide"
    save_artifact(model, ModelWeights.random(ModelConfig(hidden_size=8, n_features=2), seed=1))
    args = ["score", "--logs", str(log), "--model", str(model), "--out", str(tmp_path / "o.jsonl")]
    assert main([*args, "--pipeline", "seasonal"]) == 2
    assert "single-value" in capsys.readouterr().err
    assert main([*args, "--pipeline", "seasonal", "--bidirectional"]) == 2
    assert "--scoring-pipeline" in capsys.readouterr().err


def test_an_output_format_it_cannot_write_is_refused_not_written_as_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, model, _, _ = _setup(tmp_path)
    out = tmp_path / "scores.parquet"
    assert main(["score", "--logs", str(log), "--model", str(model), "--out", str(out)]) == 2
    assert ".parquet is not a format" in capsys.readouterr().err and not out.exists()


def test_a_multi_feature_model_says_which_features_drive_each_score(tmp_path: Path) -> None:
    from rnncore.contract import EventRecord
    from rnncore.model.envelope_file import save_envelope
    from rnncore.stages.envelope import EnvelopeParams, fit_envelope

    rng = np.random.default_rng(1)
    model = tmp_path / "wide"
    records = [EventRecord("a", float(t), tuple(rng.normal(size=2))) for t in range(600)]
    save_envelope(fit_envelope(records, EnvelopeParams(min_history=0)), model)
    save_artifact(model, ModelWeights.random(ModelConfig(hidden_size=8, n_features=2), seed=1))  # checksums it
    log = tmp_path / "wide.jsonl"
    rows = [[float(v) for v in rng.normal(size=2)] for _ in range(60)]
    rows[50][1] = 12.0  # the second feature alone is far out
    log.write_text("".join(json.dumps({"key": "a", "time": 1e4 + i, "value": r}) + "\n" for i, r in enumerate(rows)))
    out, table = tmp_path / "o.jsonl", tmp_path / "o.csv"
    for path in (out, table):
        assert main(["score", "--logs", str(log), "--model", str(model), "--out", str(path)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(abs(sum(r["contributions"]) - 1.0) < 1e-5 for r in records)
    assert records[50]["contributions"][1] > 0.9
    with table.open() as handle:
        header = next(csv.reader(handle))
    assert header[-2:] == ["contribution_0", "contribution_1"]


def test_plot_draws_the_streams_with_the_most_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stream.evaluation.score_plot import ScoreRecorder

    log, model, _, _ = _setup(tmp_path)
    argv = ["score", "--logs", str(log), "--model", str(model), "--out", str(tmp_path / "s.csv")]
    assert main([*argv, "--plot", str(tmp_path / "p.png"), "--plot-streams", "2"]) == 0
    assert "plot: " in capsys.readouterr().out and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert main([*argv, "--plot", str(tmp_path / "p.svg")]) == 2
    assert "--plot takes a .png path" in capsys.readouterr().err
    recorder = ScoreRecorder()
    for key, flags in (("a", [True, False]), ("b", [True, True]), ("c", [False, False])):
        for i, flagged in enumerate(flags):
            recorder(key, float(i), (0.0,), 1.0 if flagged else 0.0, flagged, 0.0, 1.0)
    assert recorder.most_flagged(2) == ["b", "a"]
