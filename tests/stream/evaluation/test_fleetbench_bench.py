"""`rnnwatch bench fleet`: the product path really trains and scores, baselines and metrics behave."""

import numpy as np
import pytest

from stream.cli import main
from stream.evaluation.fleet.baselines import hotelling_t2, rolling_zscore, t2_threshold
from stream.evaluation.fleet.generator import make_fleet
from stream.evaluation.fleet.metrics import best_threshold, eventwise
from stream.evaluation.fleet.product import train_and_score


@pytest.mark.timeout(180)
def test_product_path_scores_every_test_row(tmp_path) -> None:
    units = make_fleet(0, streams=2, machines=0, n_train=1600, n_test=800)  # >= 1,500 rows: a training reference
    run = train_and_score(units, tmp_path, train_seconds=3)
    assert run.threshold == 0.99  # `rnnwatch score`'s own default, read from its parser
    assert (run.artifact / "current" / "model.json").exists() and (run.artifact / "current" / "envelope.npz").exists()
    for u in units:
        s = run.scores[u.name]
        assert s.shape == (800,) and np.all((s >= 0) & (s <= 1))
        assert s.std() > 0  # really scored, not a constant


@pytest.mark.timeout(180)
def test_sustained_faults_stay_flagged_through_train_then_score(tmp_path) -> None:
    """The product path flags frozen sensors and level shifts for most of their duration, not at the edges."""
    units = make_fleet(0, streams=6, machines=0)
    run = train_and_score(units, tmp_path, train_seconds=5)
    held, normal = [], []
    for u in units:
        flag = run.scores[u.name] >= run.threshold
        held += [flag[s + (e - s) // 2 : e].mean() for k, s, e in u.events if k in ("frozen", "level_shift")]
        normal.append(flag[u.labels == 0])
    assert len(held) >= 6 and np.median(held) > 0.5  # the second half of each fault, long after its onset
    assert np.concatenate(normal).mean() < 0.15  # false alarms on normal rows (measured 0.07 for this fleet)


def test_t2_flags_fault_state_beyond_normal_rows() -> None:
    u = next(u for u in make_fleet(2, streams=0, machines=2) if any(k == "fault_state" for k, _, _ in u.events))
    kind, s, e = next(ev for ev in u.events if ev[0] == "fault_state")
    t2 = hotelling_t2(u)
    assert np.median(t2[s:e]) > np.median(t2[u.labels == 0])
    assert t2_threshold(8) > t2_threshold(1)


def test_rolling_zscore_peaks_at_a_spike() -> None:
    u = next(u for u in make_fleet(1, streams=4, machines=0) if any(k == "spike" for k, _, _ in u.events))
    _, s, _ = next(ev for ev in u.events if ev[0] == "spike")
    z = rolling_zscore(u)
    assert z.shape == (u.test.shape[0],) and z[s] > 4.0


def test_best_threshold_and_event_f1() -> None:
    labels = np.zeros(100, dtype=np.int64)
    labels[40:50] = 3
    score = np.where(labels > 0, 2.0, 0.0) + np.linspace(0, 0.1, 100)
    cut = best_threshold(score, labels)
    assert np.array_equal(score >= cut, labels > 0)
    ev = eventwise(score >= cut, [("level_shift", 40, 50)], labels)
    assert ev["event_f1"] == 1.0
    assert eventwise(np.zeros(100, dtype=bool), [("level_shift", 40, 50)], labels)["event_f1"] == 0.0


@pytest.mark.timeout(240)
def test_bench_fleet_cli_prints_table_and_result(capsys) -> None:
    argv = ["bench", "fleet", "--seeds", "1", "--streams", "1", "--machines", "1"]
    code = main([*argv, "--n-train", "600", "--n-test", "900", "--train-seconds", "3"])
    out = capsys.readouterr().out
    assert code == 0
    result = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(result) == 1 and "rnnwatch_event_f1=" in result[0] and "t2_event_f1=" in result[0]
    assert "hotelling_t2_raw" in out and "broken_corr" in out
    assert main(["bench", "fleet", "--seeds", "9"]) == 2
