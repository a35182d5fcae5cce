"""The rig generator (seeded, physically coupled, faults hidden inside the sensors' ranges) and its benchmark."""

import dataclasses

import numpy as np
import pytest

from stream.evaluation.rigs.generator import FAULT_ROWS, FAULTS, SENSORS, make_rig, make_site
from stream.evaluation.rigs.runner import row_recall, write_site
from stream.evaluation.user_data import load_user_data
from stream.evaluation.user_report import scored
from tests.stream.evaluation.bench_scripts import load_bench_script, result_fields


def test_a_rig_is_seeded_and_labelled_by_its_fault_schedule() -> None:
    a, b = make_rig(3, 1), make_rig(3, 1)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.normal, b.normal)
    assert not np.array_equal(a.test, make_rig(3, 2).test)
    assert a.normal.shape == (6000, 8) and a.test.shape == (7000, 8) and len(SENSORS) == 8
    assert {k for k, _, _ in a.events} <= set(FAULTS) and len(a.events) >= 5
    labelled = np.zeros(7000, dtype=bool)
    for _, s, e in a.events:
        assert FAULT_ROWS[0] <= e - s <= FAULT_ROWS[1]
        labelled[s:e] = True
    assert np.array_equal(labelled, a.labels == 1)
    assert np.all(np.diff(a.times) == a.dt) and a.times[0] - a.normal_times[0] == 86400  # same hours, day before


def test_sensors_are_coupled_like_a_pump() -> None:
    r = make_rig(0, 0)
    x = r.normal
    corr = np.corrcoef(x, rowvar=False)
    flow, power = SENSORS.index("flow"), SENSORS.index("motor_kw")
    assert corr[SENSORS.index("load_cmd"), flow] > 0.8 and corr[flow, power] > 0.8
    # the oil lags the power: the power now explains the oil ten minutes later better than the oil now
    lag = int(600 / r.dt)
    oil = SENSORS.index("oil_temp")
    assert np.corrcoef(x[:-lag, power], x[lag:, oil])[0, 1] > np.corrcoef(x[:, power], x[:, oil])[0, 1]


def test_many_fault_rows_stay_inside_every_sensors_normal_range() -> None:
    inside, stuck = [], []
    for r in make_site(0) + make_site(1):
        lo, hi = r.normal.min(axis=0), r.normal.max(axis=0)
        for kind, s, e in r.events:
            seg = r.test[s:e]
            inside.append(np.all((seg >= lo) & (seg <= hi), axis=1).mean())
            if kind == "stuck_sensor":
                stuck.append(bool(np.any(np.ptp(seg, axis=0) == 0)))
    assert np.mean(inside) > 0.5  # most fault rows are not visible in any single sensor's range
    assert stuck and all(stuck)


def test_sites_are_written_in_evaluates_format(tmp_path) -> None:
    rigs = make_site(5, rigs=2, n_normal=800, n_test=1500)
    data, normal = write_site(rigs, tmp_path)
    files = load_user_data(data, "fault", normal=normal)
    assert [f.key for f in files] == [r.name for r in rigs] and files[0].features == SENSORS
    assert all(f.train_source.startswith("normal file") for f in files)
    assert np.array_equal(files[0].labels, rigs[0].labels)
    assert np.allclose(files[0].values, rigs[0].test, rtol=1e-5, atol=1e-5)


@pytest.mark.timeout(240)
def test_bench_rigs_prints_table_baselines_and_one_result_line(capsys) -> None:
    bench = load_bench_script("rigs")
    argv = ["--seeds", "1", "--rigs", "1", "--n-normal", "1200", "--n-test", "2400", "--train-seconds", "3"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    fields = result_fields(out)
    assert {"rigs_point_f1", "rigs_false_alarms", "rigs_event_f1", "t2_point_f1", "zscore_point_f1"} <= set(fields)
    assert 0.0 <= float(fields["rigs_false_alarms"]) <= 1.0
    assert "hotelling_t2_raw" in out and "rolling_zscore" in out and "cooling_fail" in out and "rows flagged" in out


def test_row_recall_is_the_share_of_each_kinds_rows_flagged() -> None:
    labels = np.zeros(100, dtype=np.int64)
    labels[10:20] = labels[50:90] = 1
    score = np.zeros(100)
    score[15:20] = score[50:60] = 2.0
    s = scored("r", np.arange(100.0), labels, score, 1.0)
    s = dataclasses.replace(s, events=[("leak", 10, 20), ("leak", 50, 90)])
    assert row_recall(s) == {"rows_leak": 15 / 50}


def test_rnnwatch_bench_rigs_refuses_bad_seeds_in_one_line(capsys) -> None:
    from stream.cli import main

    assert main(["bench", "rigs", "--seeds", "9"]) == 2
    assert capsys.readouterr().err.strip() == "rnnwatch bench rigs: --seeds must be between 1 and 8, got 9"


@pytest.mark.timeout(300)
def test_rnnwatch_bench_rigs_runs_the_rig_benchmark(capsys) -> None:
    from stream.cli import main

    assert main(["bench", "rigs", "--seeds", "1", "--split", "report", "--train-seconds", "3"]) == 0
    out = capsys.readouterr().out
    assert "report seeds [100]" in out and "3 rigs per site" in out
    assert sum(line.startswith("RESULT rigs_point_f1=") for line in out.splitlines()) == 1
