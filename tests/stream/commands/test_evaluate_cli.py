"""`rnnwatch evaluate`: the product path end to end on tiny labelled files, and its one-line refusals."""

import csv

import pytest

from stream.cli import main
from tests.stream.evaluation.labelled_files import write_labelled


@pytest.mark.timeout(240)
def test_evaluate_reports_per_file_and_pooled_and_plots(tmp_path, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    write_labelled(data / "pump1.csv", n=2600, fault=(2100, 2200), seed=1)  # >= 1,500 normal rows: a reference
    write_labelled(data / "pump2.csv", n=2600, fault=(2150, 2300), seed=2)
    argv = ["evaluate", "--data", str(data), "--label-column", "fault", "--out", str(out), "--train-minutes", "0.05"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "pump1" in text and "pump2" in text and "pooled" in text and "best_cut_f1" in text
    with (out / "per_file.csv").open() as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"pump1", "pump2", "pooled"}
    pooled = rows["pooled"]
    assert float(pooled["rows"]) == 500 + 450 and float(pooled["events"]) == 2
    assert float(pooled["event_recall"]) == 1.0  # a 10-sigma shift of one sensor is found in both files
    assert 0.0 <= float(pooled["false_alarm"]) <= 1.0 and float(pooled["best_f1"]) >= float(pooled["f1"])
    assert (out / "worst_files.png").stat().st_size > 10_000 and (out / "model" / "current" / "model.json").exists()
    assert main([*argv, "--plot", str(tmp_path / "mine.png"), "--worst", "1"]) == 0
    assert "the 1 file(s) with the lowest pointwise F1" in capsys.readouterr().out
    assert (tmp_path / "mine.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_refuses_a_missing_label_column_in_one_line(tmp_path, capsys) -> None:
    write_labelled(tmp_path / "a.csv")
    assert main(["evaluate", "--data", str(tmp_path), "--label-column", "nope", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnwatch evaluate: ") and "'nope'" in err and "\n" not in err


@pytest.mark.timeout(240)
def test_evaluate_says_which_files_had_too_few_normal_rows_for_the_envelope(tmp_path, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    write_labelled(data / "long.csv", seed=1)
    write_labelled(data / "short.csv", n=400, fault=(110, 160), seed=2)  # 110 normal rows: trains, no reference (132)
    argv = ["evaluate", "--data", str(data), "--label-column", "fault", "--out", str(out), "--train-minutes", "0.05"]
    assert main([*argv, "--worst", "0"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "['short']" in notes[0] and "long" not in notes[0]
