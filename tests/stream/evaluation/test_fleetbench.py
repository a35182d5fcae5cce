import numpy as np

from stream.fleetbench.generator import make_fleet
from stream.fleetbench.metrics import eventwise, pointwise


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
