import numpy as np

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
