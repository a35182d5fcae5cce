"""The product path on NAB: the probationary training log, scores read back in file order, and a real
`rnnwatch train` + `rnnwatch score` run through the CLI's own parsers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import orjson
import pytest

from stream.errors import ProductPathError
from stream.evaluation.nab_data import NabFile
from stream.evaluation.nab_product import read_scores, train_and_score, write_log
from stream.evaluation.nab_scorer import probation_length


def _file(name: str, n: int, seed: int) -> NabFile:
    rng = np.random.default_rng(seed)
    stamps = np.datetime64("2020-01-01T00:00:00", "s") + np.arange(n) * np.timedelta64(300, "s")
    values = 10 + np.sin(np.arange(n) / 12.0) + 0.1 * rng.standard_normal(n)
    values[int(0.8 * n)] += 8.0
    return NabFile(name=name, timestamps=stamps, values=values)


def test_training_log_holds_only_each_files_probationary_rows(tmp_path: Path) -> None:
    files = [_file("a/one.csv", 1000, 0), _file("b/two.csv", 6000, 1)]
    assert write_log(tmp_path / "p.csv", files, probation_only=True) == 150 + 750
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    assert rows[0] == ["key", "time", "value"] and len(rows) == 1 + 150 + 750
    assert rows[1] == ["a/one.csv", repr(float(files[0].seconds[0])), repr(float(files[0].values[0]))]
    assert rows[-1][0] == "b/two.csv" and float(rows[-1][1]) == files[1].seconds[probation_length(6000) - 1]
    assert write_log(tmp_path / "all.csv", files, probation_only=False) == 7000


def test_scores_come_back_in_file_order_when_a_file_steps_back_in_time(tmp_path: Path) -> None:
    stamps = np.array(["2020-01-01T00:00", "2020-01-01T00:05", "2020-01-01T00:02", "2020-01-01T00:05"], "datetime64[s]")
    f = NabFile(name="c/x.csv", timestamps=stamps, values=np.arange(4.0))
    # `rnnwatch score` emits a key's events in stable time order: rows 0, 2, 1, 3
    emitted = [(0, 0.1), (2, 0.3), (1, 0.2), (3, 0.4)]
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"key": "c/x.csv", "score": s}) + b"\n" for _, s in emitted))
    assert read_scores(path, [f])["c/x.csv"].tolist() == [0.1, 0.2, 0.3, 0.4]
    path.write_bytes(orjson.dumps({"key": "c/x.csv", "score": 0.5}) + b"\n")
    with pytest.raises(ProductPathError, match="wrote 1 of its 4 rows"):
        read_scores(path, [f])


@pytest.mark.timeout(240)
def test_train_and_score_runs_the_cli_with_its_defaults(tmp_path: Path) -> None:
    files = [_file("a/one.csv", 4000, 0), _file("a/two.csv", 1500, 1)]
    run = train_and_score(files, tmp_path, train_seconds=3)
    assert run.threshold == 0.99  # `rnnwatch score`'s own default, read from its parser
    assert "envelope: 2 streams" in run.train_output  # 600 and 225 probationary rows, both >= 132
    assert "scored 5500 events of 2 streams" in run.score_output
    for f in files:
        s = run.scores[f.name]
        assert s.shape == f.values.shape and np.all((s >= 0) & (s <= 1)) and s.std() > 0
    spike = int(0.8 * 4000)
    assert run.scores["a/one.csv"][spike] >= 0.99  # the injected spike is flagged at the default threshold
    for f in files:  # the rarity is -log10(1 - score), ranks what reads 1, and flags where the score flags
        assert ((run.rarity[f.name] >= run.rarity_threshold) == (run.flags[f.name] > 0)).mean() > 0.999
