"""The short-experiment generator (one testbed per seed, files of ~1,000-1,300 rows with one fault) and its bench."""

import numpy as np
import pytest

from stream.evaluation.rigs.experiment_runner import LABEL, write_testbed
from stream.evaluation.rigs.experiments import (
    EXPERIMENT_FAULT_ROWS,
    EXPERIMENT_ROWS,
    FREE_KEY,
    HEAD_ROWS,
    make_testbed,
)
from stream.evaluation.rigs.generator import FAULTS, SENSORS
from stream.evaluation.user_data import load_user_data
from tests.stream.evaluation.bench_scripts import load_bench_script, result_fields


def test_a_testbed_is_seeded_and_each_file_has_one_labelled_fault_after_a_normal_head() -> None:
    a, b = make_testbed(2), make_testbed(2)
    assert np.array_equal(a.free, b.free) and all(
        np.array_equal(x.values, y.values) for x, y in zip(a.experiments, b.experiments, strict=True)
    )
    assert not np.array_equal(a.free, make_testbed(3).free)
    assert a.free.shape == (3000, 8) and len(a.experiments) == 8
    assert {e.events[0][0] for e in a.experiments[:7]} == set(FAULTS)  # every kind once before repeats
    for e in a.experiments:
        n = e.values.shape[0]
        assert EXPERIMENT_ROWS[0] <= n <= EXPERIMENT_ROWS[1] and e.values.shape[1] == len(SENSORS)
        [(kind, start, end)] = e.events
        assert HEAD_ROWS[0] <= start <= HEAD_ROWS[1] and kind in FAULTS
        assert end == n or EXPERIMENT_FAULT_ROWS[0] <= end - start <= EXPERIMENT_FAULT_ROWS[1]
        expected = np.zeros(n, dtype=np.int64)
        expected[start:end] = 1
        assert np.array_equal(e.labels, expected)
        assert np.all(np.diff(e.times) == 1.0)


def test_temperatures_warm_up_during_the_normal_head_and_operating_points_differ() -> None:
    bed = make_testbed(0)
    oil = SENSORS.index("oil_temp")
    rises = [e.values[e.events[0][1] - 50 :, oil][:50].mean() - e.values[:50, oil].mean() for e in bed.experiments]
    assert np.median(rises) > 0.5  # degrees over the head: normal drift a frozen reference has to live with
    levels = [e.level for e in bed.experiments]
    assert sum(min(abs(v - f) for f in bed.free_levels) > 0.05 for v in levels) >= 4  # unseen operating points


def test_a_testbed_is_written_in_evaluates_format(tmp_path) -> None:
    bed = make_testbed(1, experiments=2, n_free=500)
    data, free = write_testbed(bed, tmp_path)
    files = load_user_data(data, LABEL)
    assert [f.key for f in files] == [e.name for e in bed.experiments]
    assert all(f.train_source == "rows before the first label" for f in files)
    first = bed.experiments[0].events[0][1]
    assert files[0].train_values.shape[0] == first and files[0].labels[0] == 1
    assert (free / f"{FREE_KEY}.csv").is_file()


@pytest.mark.timeout(300)
def test_bench_experiments_prints_both_ways_baselines_and_one_result_line(capsys) -> None:
    bench = load_bench_script("experiments")
    assert bench.main(["--seeds", "1", "--experiments", "2", "--n-free", "800", "--train-seconds", "3"]) == 0
    out = capsys.readouterr().out
    assert "[own]" in out and "[free]" in out and "hotelling_t2_raw" in out and "rolling_zscore" in out
    fields = result_fields(out)
    assert {"own_point_f1", "own_false_alarms", "free_point_f1", "free_false_alarms", "own_t2_point_f1"} <= set(fields)
    assert all(0.0 <= float(fields[k]) <= 1.0 for k in ("own_point_f1", "free_false_alarms"))


def test_rnnwatch_bench_experiments_refuses_bad_seeds_in_one_line(capsys) -> None:
    from stream.cli import main

    assert main(["bench", "experiments", "--seeds", "9"]) == 2
    assert capsys.readouterr().err.strip() == "rnnwatch bench experiments: --seeds must be between 1 and 8, got 9"
