"""The synthetic fleet is seeded, labels exactly the injected anomalies, and yields time-ordered records."""

from __future__ import annotations

import numpy as np
import pytest

from stream.data.synthetic import ANOMALY_CODES, ANOMALY_KINDS, FAMILIES, generate_fleet
from stream.errors import SyntheticError


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    a, b, c = generate_fleet(4, 300, seed=1), generate_fleet(4, 300, seed=1), generate_fleet(4, 300, seed=2)
    for x, y in zip(a.streams, b.streams, strict=True):
        np.testing.assert_array_equal(x.values, y.values)
        np.testing.assert_array_equal(x.times, y.times)
        assert x.anomalies == y.anomalies
    assert not np.array_equal(a.streams[0].values, c.streams[0].values)


def test_families_cycle_and_shapes_are_right() -> None:
    fleet = generate_fleet(8, 200, n_features=2, seed=0)
    assert [s.family for s in fleet.streams] == list(FAMILIES) * 2
    for stream in fleet.streams:
        assert stream.values.shape == (200, 2) and stream.times.shape == (200,)
        assert np.all(np.isfinite(stream.values))
    assert len({s.key for s in fleet.streams}) == 8
    assert fleet.n_events == 1600


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_each_kind_changes_exactly_the_labelled_events(kind: str) -> None:
    clean = generate_fleet(4, 600, anomaly_kinds=[kind], anomalies_per_stream=0, seed=9)
    dirty = generate_fleet(4, 600, anomaly_kinds=[kind], anomalies_per_stream=1, seed=9)
    # the first stream draws the same normal signal in both fleets: only the labelled events differ
    c0, d0 = clean.streams[0], dirty.streams[0]
    changed = np.flatnonzero(c0.values[:, 0] != d0.values[:, 0])
    assert changed.size > 0 and set(changed) <= set(np.flatnonzero(d0.labels))
    for d in dirty.streams:
        (anomaly,) = d.anomalies
        assert anomaly.kind == kind
        labelled = np.flatnonzero(d.labels)
        np.testing.assert_array_equal(labelled, np.arange(anomaly.start, anomaly.end))
        assert np.all(d.labels[labelled] == ANOMALY_CODES[kind])
        assert anomaly.start >= 600 // 5
        if kind == "frozen":
            assert np.all(d.values[anomaly.start : anomaly.end, 0] == d.values[anomaly.start, 0])


def test_anomalies_do_not_overlap_and_change_values() -> None:
    fleet = generate_fleet(8, 1000, anomalies_per_stream=3, seed=4)
    for stream in fleet.streams:
        spans = sorted((a.start, a.end) for a in stream.anomalies)
        assert len(spans) == 3
        assert all(prev[1] <= nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False))
        assert int(np.count_nonzero(stream.labels)) == sum(e - s for s, e in spans)


def test_records_are_time_ordered_and_jitter_keeps_each_stream_ordered() -> None:
    fleet = generate_fleet(3, 300, jitter=0.9, interval=10.0, seed=3)
    records = list(fleet.records())
    assert len(records) == 900
    assert all(a.time <= b.time for a, b in zip(records, records[1:], strict=False))
    for stream in fleet.streams:
        assert np.all(np.diff(stream.times) > 0)
    first = fleet.streams[0]
    assert [r for r in records if r.key == first.key][5].values == (float(first.values[5, 0]),)


@pytest.mark.parametrize(
    "kwargs",
    [dict(families=["nope"]), dict(n_events=10), dict(jitter=1.0), dict(anomalies_per_stream=30, n_events=100)],
    ids=["family", "too-short", "jitter", "too-many-anomalies"],
)
def test_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(SyntheticError):
        generate_fleet(2, **{"n_events": 200, **kwargs})
