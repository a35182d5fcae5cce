import numpy as np
import pytest

from stream.evaluation.fleet.generator import MACHINE_FAMILIES, SINGLE_FAMILIES, make_fleet
from stream.evaluation.fleet.metrics import eventwise, pointwise


def test_fleet_seeded_and_labelled() -> None:
    a, b = make_fleet(3, streams=1, machines=1), make_fleet(3, streams=1, machines=1)
    assert np.array_equal(a[1].test, b[1].test)
    assert a[1].test.shape[1] == 8 and a[0].test.shape[1] == 1
    assert (a[1].labels > 0).any() and a[1].events


def test_perfect_flag_scores_one() -> None:
    u = make_fleet(1, streams=0, machines=1)[0]
    flag = u.labels > 0
    assert pointwise(flag, u.labels)["f1"] == 1.0
    assert eventwise(flag, u.events, u.labels)["event_recall"] == 1.0


def test_every_signal_family_and_irregular_sampling_appear() -> None:
    units = [u for seed in (0, 1) for u in make_fleet(seed)]
    assert {u.family for u in units} == set(SINGLE_FAMILIES) | set(MACHINE_FAMILIES)
    for u in units:
        assert np.all(np.diff(np.concatenate([u.train_times, u.test_times])) > 0)
        assert np.isfinite(u.train).all() and np.isfinite(u.test).all()
    gaps = [np.diff(u.test_times).std() for u in units]
    assert min(gaps) == 0.0 and max(gaps) > 0.5  # some units every second, some irregular


def test_rig_sensors_share_latent_factors() -> None:
    rig = next(u for seed in range(4) for u in make_fleet(seed) if u.family == "rig")
    corr = np.corrcoef(rig.train.T)
    off_diagonal = np.abs(corr[~np.eye(8, dtype=bool)])
    assert off_diagonal.max() > 0.5  # correlated sensors: broken_corr has something to break


def test_each_event_names_the_sensors_it_touched() -> None:
    machines = [u for seed in range(4) for u in make_fleet(seed, streams=0, machines=2)]
    frozen = 0
    for unit in machines:
        assert len(unit.touched) == len(unit.events)
        for (kind, s, e), touched in zip(unit.events, unit.touched, strict=True):
            assert touched == (tuple(range(8)) if kind == "fault_state" else touched) and len(touched) in (1, 8)
            if kind == "frozen":  # the named sensor is the one that flat-lines
                flat = np.flatnonzero(np.ptp(unit.test[s:e], axis=0) == 0).tolist()
                assert flat == list(touched)
                frozen += 1
    assert frozen > 0


def test_which_sensor_counts_flagged_rows_whose_top_share_is_a_touched_sensor() -> None:
    from stream.evaluation.fleet.runner import which_sensor

    unit = make_fleet(0, streams=0, machines=1)[0]
    scores = (unit.labels > 0).astype(float)
    shares = np.full((unit.labels.size, 8), 0.1)
    for (_, s, e), touched in zip(unit.events, unit.touched, strict=True):
        shares[s:e, touched[0]] = 0.3  # the right sensor on top
    hits, total = which_sensor(unit, scores, shares, 0.99)
    one_sensor = sum(e - s for (k, s, e) in unit.events if k != "fault_state")
    assert hits == total == one_sensor
    shares[:] = 0.1
    shares[:, 0] = 0.3  # always sensor 0: right only where the fault touched sensor 0
    hits, _ = which_sensor(unit, scores, shares, 0.99)
    assert hits == sum(
        e - s for (k, s, e), t in zip(unit.events, unit.touched, strict=True) if k != "fault_state" and 0 in t
    )


def test_clean_test_rows_are_the_test_rows_before_their_faults() -> None:
    for unit in make_fleet(2, streams=2, machines=1):
        assert unit.clean_test.shape == unit.test.shape
        normal = unit.labels == 0
        np.testing.assert_array_equal(unit.clean_test[normal], unit.test[normal])
        assert not np.array_equal(unit.clean_test[~normal], unit.test[~normal])


def test_alarm_precision_counts_each_detected_fault_once() -> None:
    """A fault flagged in ten short runs is ten true runs for event_precision but one detection for
    alarm_precision; the false run counts once in both."""
    from stream.evaluation.fleet.metrics import eventwise

    labels = np.zeros(300, dtype=np.int64)
    labels[100:200] = 3
    flicker = np.zeros(300, dtype=bool)
    flicker[100:200:10] = True  # ten runs inside the fault
    flicker[250] = True  # one false run
    solid = np.zeros(300, dtype=bool)
    solid[100:200] = True
    solid[250] = True
    events = [("level_shift", 100, 200)]
    a, b = eventwise(flicker, events, labels), eventwise(solid, events, labels)
    assert a["event_precision"] == 10 / 11 and b["event_precision"] == 1 / 2
    assert a["alarm_precision"] == b["alarm_precision"] == 1 / 2 and a["alarm_f1"] == pytest.approx(2 / 3)
