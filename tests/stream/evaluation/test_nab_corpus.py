"""NAB corpus loading, baselines and the results layout, on a tiny synthetic corpus in a tmp dir."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from stream.errors import EvaluationError
from stream.evaluation.baselines import persistence_error, windowed_gaussian
from stream.evaluation.nab_data import load_profiles, load_series, load_windows
from stream.evaluation.nab_scorer import PROFILES, scaled_sigmoid
from stream.evaluation.nab_split import file_split, in_split
from stream.evaluation.runner import baseline_detectors, evaluate, format_table, write_final_results, write_results
from tests.reference import windowed_gaussian_reference


def _write_corpus(root: Path, n: int = 400, spike_at: int = 250) -> None:
    rng = np.random.default_rng(0)
    stamps = np.datetime64("2020-01-01T00:00:00") + np.arange(n) * np.timedelta64(5, "m")
    labels = {}
    for category, name, spike in (("realA", "one.csv", spike_at), ("artificialB", "two.csv", None)):
        values = np.sin(np.arange(n) / 10) + 0.1 * rng.normal(size=n)
        windows = []
        if spike is not None:
            values[spike] += 10
            start, end = stamps[spike - 5], stamps[spike + 14]
            windows.append([str(start).replace("T", " ") + ".000000", str(end).replace("T", " ") + ".000000"])
        (root / "data" / category).mkdir(parents=True, exist_ok=True)
        lines = ["timestamp,value"] + [f"{str(t).replace('T', ' ')},{v}" for t, v in zip(stamps, values, strict=True)]
        (root / "data" / category / name).write_text("\n".join(lines) + "\n")
        labels[f"{category}/{name}"] = windows
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))


def test_load_corpus_and_windows(tmp_path: Path) -> None:
    _write_corpus(tmp_path)
    files = load_series(tmp_path)
    assert [f.name for f in files] == ["artificialB/two.csv", "realA/one.csv"]
    assert files[1].values.shape == (400,) and files[1].seconds[1] - files[1].seconds[0] == 300.0
    windows = load_windows(tmp_path, files)
    assert windows == {"artificialB/two.csv": [], "realA/one.csv": [(245, 264)]}
    assert load_profiles(tmp_path) == PROFILES  # no config/profiles.json: the published ones


def test_profiles_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    matrix = {"tpWeight": 1.0, "fpWeight": 0.5, "fnWeight": 3.0, "tnWeight": 1.0}
    (tmp_path / "config" / "profiles.json").write_text(json.dumps({"mine": {"CostMatrix": matrix}}))
    (profile,) = load_profiles(tmp_path)
    assert (profile.name, profile.tp, profile.fp, profile.fn) == ("mine", 1.0, 0.5, 3.0)


def test_missing_corpus_and_bad_rows_raise(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="NAB checkout"):
        load_series(tmp_path)
    (tmp_path / "data" / "c").mkdir(parents=True)
    (tmp_path / "data" / "c" / "x.csv").write_text("timestamp,value\n2020-01-01 00:00:00,abc\n")
    with pytest.raises(EvaluationError, match="x.csv:2"):
        load_series(tmp_path)


def test_windowed_gaussian_matches_literal_reference() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=700), [3.0] * 5, rng.normal(5, 2, size=300)])
    fast = windowed_gaussian(x, window_size=200, step_size=30)
    slow = windowed_gaussian_reference(x, window_size=200, step_size=30)
    np.testing.assert_allclose(fast, slow, atol=1e-9)
    assert fast[0] == 0.0 and ((fast >= 0) & (fast <= 1)).all()


def test_baselines_flag_a_spike() -> None:
    x = np.sin(np.arange(1000) / 10)
    x[600] += 20
    for detector in (windowed_gaussian, persistence_error):
        scores = detector(x)
        assert scores[600] == scores.max()


def test_runner_scores_baselines_and_writes_nab_layout(tmp_path: Path) -> None:
    _write_corpus(tmp_path / "nab")
    files = load_series(tmp_path / "nab")
    windows = load_windows(tmp_path / "nab", files)
    runs = [evaluate(name, det, files, windows, PROFILES) for name, det in baseline_detectors().items()]
    caught_at_spike = scaled_sigmoid(-(264 - 250 + 1) / 20) / scaled_sigmoid(-1.0)  # window 245..264
    assert runs[0].results["standard"].normalised == pytest.approx(100 * (caught_at_spike + 1) / 2)
    out = tmp_path / "results"
    for run in runs:
        write_results(out, run, files, windows)
    final = json.loads(write_final_results(out, runs).read_text())
    assert set(final) == {"windowedGaussian", "persistenceError"}
    csv_lines = (out / "windowedGaussian" / "realA" / "windowedGaussian_one.csv").read_text().splitlines()
    assert csv_lines[0] == "timestamp,value,anomaly_score,label" and len(csv_lines) == 401
    assert csv_lines[1 + 250].endswith(",1")
    assert "windowedGaussian" in format_table(runs, PROFILES)


def test_split_is_the_parity_of_the_name_hash_and_stable() -> None:
    names = [f"cat/f{i}.csv" for i in range(40)]
    halves = {file_split(n) for n in names}
    assert halves == {"tune", "report"}
    # fixed by the name alone: SHA-1 of "realKnownCause/nyc_taxi.csv" ends in an even hex digit
    assert file_split("realKnownCause/nyc_taxi.csv") == "tune"
    assert file_split("realTweets/Twitter_volume_AAPL.csv") == "report"
    tune, report = in_split(names, "tune"), in_split(names, "report")
    assert sorted(tune + report) == sorted(names) and not set(tune) & set(report)
    assert in_split(names, "all") == names
    with pytest.raises(EvaluationError, match="split must be one of"):
        in_split(names, "half")


def test_evaluate_rejects_wrong_length_scores(tmp_path: Path) -> None:
    _write_corpus(tmp_path)
    files = load_series(tmp_path)
    with pytest.raises(EvaluationError, match="finite scores"):
        evaluate("bad", lambda fs: {f.name: np.zeros(3) for f in fs}, files, load_windows(tmp_path, files), PROFILES)


@pytest.mark.timeout(300)
def test_bench_nab_command_ends_with_one_result_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stream.cli import main

    # 3400 rows: 510 probationary rows per file, so even a one-file half has the 100 validation steps train wants
    _write_corpus(tmp_path / "nab", n=3400, spike_at=2500)
    args = ["bench", "nab", "--data", str(tmp_path / "nab"), "--out", str(tmp_path / "res"), "--train-seconds", "2"]
    assert main([*args, "--plot", str(tmp_path / "worst.png"), "--plot-files", "2"]) == 0
    out = capsys.readouterr().out
    assert "(the 2 worst file(s))" in out and (tmp_path / "worst.png").read_bytes()[:4] == b"\x89PNG"
    lines = out.strip().splitlines()
    assert re.fullmatch(
        r"RESULT nab_standard=\S+ nab_low_fp=\S+ nab_low_fn=\S+ "
        r"default_standard=\S+ default_low_fp=\S+ default_low_fn=\S+ seconds=\S+",
        lines[-1],
    )
    assert sum(line.startswith("RESULT") for line in lines) == 1
    assert "default (>= 0.99)" in out and "realA" in out  # the default-threshold rows and the category table
    assert {line.split()[0] for line in lines if "NAB best (labels)" in line} == {"all", "tune", "report"}
    final = json.loads((tmp_path / "res" / "final_results.json").read_text())
    assert set(final) == {"windowedGaussian", "persistenceError", "rnnwatch"}
    assert main(["bench", "nab", "--data", str(tmp_path / "missing")]) == 2


def test_bench_split_flag_serves_both_benchmarks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stream.cli import main

    _write_corpus(tmp_path / "nab")  # both files hash to REPORT
    assert main(["bench", "nab", "--data", str(tmp_path / "nab"), "--split", "tune"]) == 2
    assert "no file of" in capsys.readouterr().err
    assert main(["bench", "fleet", "--split", "all"]) == 2  # fleet seeds are tune or report, never pooled
    assert "--split is tune or report" in capsys.readouterr().err
