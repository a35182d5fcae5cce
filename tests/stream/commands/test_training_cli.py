"""`rnnwatch train` end to end on a small log: artifact written and loadable, summary printed, clear failures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rnncore.detector import Detector
from rnncore.model.artifact import load_artifact
from stream.cli import main
from stream.data.eventlog import RollingEventLogWriter
from stream.data.synthetic import generate_fleet

pytestmark = pytest.mark.torch

FAST = [
    "--min-validation-steps",
    "0",
    "--hidden-size",
    "8",
    "--epochs",
    "2",
    "--bptt",
    "16",
    "--segment-length",
    "64",
    "--threads",
    "1",
]


def test_train_from_logs_writes_a_loadable_artifact_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RollingEventLogWriter(tmp_path / "logs", max_bytes=20_000) as writer:
        writer.write(generate_fleet(4, 300, seed=1).records())
    (tmp_path / "logs" / "junk.jsonl").write_text('{"key": "x", "time": "never", "value": 1}\n')
    out = tmp_path / "model"
    argv = ["train", "--logs", str(tmp_path / "logs"), "--out", str(out), "--model-version", "m1", "--no-progress"]
    code = main([*argv, *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "bad_type=1" in captured.err
    for word in ("model", "persistence", "ewma", "NLL", "MAE", "event-steps/s"):
        assert word in captured.out
    weights = load_artifact(out)
    assert weights.config.hidden_size == 8
    assert weights.metadata["version"] == "m1"
    document = json.loads((out / "current" / "model.json").read_text())
    assert document["training"]["data"]["skipped"] == {"bad_type": 1}
    assert document["training"]["data"]["streams"] == 4
    assert document["validation_loss"] == pytest.approx(document["validation"]["model"]["nll"])
    history = document["training"]["history"]  # every epoch's validation NLL is kept, after the bars are gone
    assert len(history) == 2 and all(math.isfinite(epoch["validation_nll"]) for epoch in history)
    printed = next(line for line in captured.out.splitlines() if line.startswith("epochs (train/validation NLL)"))
    assert printed.endswith(f"2: {history[1]['train_nll']:.3f}/{history[1]['validation_nll']:.3f}")  # and printed
    stopped = captured.out.split("stopped by ")[1].splitlines()[0]
    assert stopped.startswith(("--epochs", "the --", "early stopping")), stopped  # the flags' words, not rnncore's


def test_train_without_usable_rows_exits_non_zero_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "bad.csv"
    log.write_text("key,time,value\na,yesterday,1\nb,1,NaN\n")
    code = main(["train", "--logs", str(log), "--out", str(tmp_path / "model"), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "no usable rows" in err and "bad_type=1" in err and "non_finite_value=1" in err
    assert not (tmp_path / "model").exists()


def test_train_needs_a_data_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "m")]) == 2
    assert "--logs" in capsys.readouterr().err


def test_train_bidirectional_writes_a_non_causal_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    argv = ["train", "--synthetic", "3", "--synthetic-events", "300", "--bidirectional", "--out", str(out)]
    assert main([*argv, "--no-progress", "--warmup", "8", *FAST]) == 0, capsys.readouterr().err
    weights = load_artifact(out)
    assert weights.config.bidirectional and "rnn_reverse.weight_ih_l0" in weights.params
    document = json.loads((out / "current" / "model.json").read_text())
    assert document["causal"] is False and document["architecture"]["direction"] == "bidirectional"
    assert math.isfinite(document["validation"]["model"]["nll"])


def test_train_with_attention_window_writes_the_attention_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    argv = ["train", "--synthetic", "2", "--synthetic-events", "200", "--attention-window", "4", "--out", str(out)]
    assert main([*argv, "--no-progress", "--warmup", "8", *FAST]) == 0
    weights = load_artifact(out)
    assert weights.config.attention_window == 4 and weights.params["attention.key.weight"].shape == (8, 8)
    detector = Detector(weights, max_streams=1)
    assert (
        json.loads((out / "current" / "model.json").read_text())["state_bytes_per_stream"] == detector.table.row_nbytes
    )
    assert f"of which the attention ring (K=4) {4 * 4 * 8 + 8}" in capsys.readouterr().out
    assert main([*argv[:-2], "--bidirectional", "--out", str(tmp_path / "x"), "--no-progress", *FAST]) == 2


def test_a_model_that_loses_to_a_baseline_or_was_barely_validated_is_named_so() -> None:
    from types import SimpleNamespace

    from stream.commands.train import quality_warnings

    def result(model: float, persistence: float, ewma: float) -> SimpleNamespace:
        report = SimpleNamespace(
            model=SimpleNamespace(nll=model), persistence=SimpleNamespace(nll=persistence),
            ewma=SimpleNamespace(nll=ewma), ewma_alpha=0.3,
        )  # fmt: skip
        return SimpleNamespace(report=report)

    plenty, one_step = SimpleNamespace(validation_steps=5000), SimpleNamespace(validation_steps=1)
    assert quality_warnings(result(0.10, 0.20, 0.15), plenty) == []
    losing = quality_warnings(result(0.22, 0.13, 0.10), plenty)
    assert len(losing) == 1 and "does not beat EWMA (alpha=0.3) (0.1000)" in losing[0]
    thin = quality_warnings(result(0.10, 0.20, 0.15), one_step)
    assert len(thin) == 1 and "only 1 validation step" in thin[0]


def test_retraining_never_overwrites_the_served_version_and_an_incompatible_one_is_not_made_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnncore.model.artifact import load_artifact, save_artifact
    from rnncore.model.config import ModelConfig
    from rnncore.model.store import list_versions
    from rnncore.model.weights import ModelWeights

    out = tmp_path / "live"  # a plain artifact from before versioned stores, being served
    save_artifact(out, ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=0), {"version": "live"})
    argv = ["train", "--synthetic", "2", "--synthetic-events", "200", "--out", str(out), "--no-progress"]
    assert main([*argv, *FAST, "--cell", "lstm", "--model-version", "lstm-1"]) == 0
    err = capsys.readouterr().err
    assert "not made current" in err and "rnnwatch model use" in err and "--replace-incompatible" in err
    assert load_artifact(out).metadata["version"] == "live"  # still what the service serves
    assert load_artifact(out / "lstm-1").config.cell == "lstm"  # written beside it
    assert main([*argv, *FAST, "--model-version", "same-layout"]) == 0  # same layout: a hot reload takes it
    assert load_artifact(out).metadata["version"] == "same-layout"
    assert main([*argv, *FAST, "--model-version", "same-layout"]) == 2  # a version is never overwritten
    assert "exists" in capsys.readouterr().err
    assert main([*argv, *FAST, "--cell", "lstm", "--replace-incompatible", "--model-version", "forced"]) == 0
    assert load_artifact(out).config.cell == "lstm"
    assert [v.name for v in list_versions(out)] == ["live", "lstm-1", "same-layout", "forced"]


def test_model_use_rolls_back_and_refuses_an_incompatible_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnncore.model.artifact import load_artifact

    out = tmp_path / "store"
    argv = ["train", "--synthetic", "2", "--synthetic-events", "200", "--out", str(out), "--no-progress", *FAST]
    assert main([*argv, "--model-version", "v1"]) == 0
    assert main([*argv, "--model-version", "v2"]) == 0
    assert main([*argv, "--model-version", "v3-lstm", "--cell", "lstm"]) == 0
    capsys.readouterr()
    assert main(["model", "list", str(out)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in listed] == [["v1", "gru"], ["*", "v2"], ["v3-lstm", "lstm"]]
    assert main(["model", "use", str(out), "v1"]) == 0
    assert "current -> v1 (was v2)" in capsys.readouterr().out
    assert load_artifact(out).metadata["version"] == "v1"
    assert main(["model", "use", str(out), "v3-lstm"]) == 2
    assert "--replace-incompatible" in capsys.readouterr().err
    assert main(["model", "use", str(out), "nope"]) == 2
    assert "has no version 'nope'" in capsys.readouterr().err
    assert load_artifact(out).metadata["version"] == "v1"


def test_a_validation_split_too_small_to_judge_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--synthetic", "2", "--synthetic-events", "200", "--out", str(tmp_path / "m"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "only 80 validation step(s), fewer than --min-validation-steps 100" in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_skip_if_trained_keeps_the_model_that_is_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rnncore.model.artifact import read_metadata, save_artifact
    from rnncore.model.config import ModelConfig
    from rnncore.model.weights import ModelWeights

    out = tmp_path / "models"
    save_artifact(out, ModelWeights.random(ModelConfig(hidden_size=8), seed=2), {"version": "v1"})
    assert main(["train", "--skip-if-trained", "--synthetic", "2", "--out", str(out)]) == 0
    assert "--skip-if-trained: not training" in capsys.readouterr().out
    assert read_metadata(out)["version"] == "v1" and not (out / "current").exists()


def test_train_dropout_flag_reaches_the_trainer_and_needs_stacked_layers(tmp_path: Path) -> None:
    argv = ["train", "--synthetic", "2", "--synthetic-events", "200", "--no-progress", "--warmup", "8", *FAST]
    assert main([*argv, "--layers", "2", "--dropout", "0.3", "--out", str(tmp_path / "m")]) == 0
    settings = json.loads((tmp_path / "m" / "current" / "model.json").read_text())["training"]["settings"]
    assert settings["dropout"] == 0.3
    assert main([*argv, "--dropout", "0.3", "--out", str(tmp_path / "one-layer")]) == 2  # nothing between layers
