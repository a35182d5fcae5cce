"""Detector contract tests: snapshot continuation, determinism, batching, rejections, flood guard, eviction,
hot reload and better-than-chance scores on injected spikes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from rnncore.detector import Detector, EventStatus, StepResult, status_reason
from rnncore.errors import BatchShapeError, DetectorError, IncompatibleModelError, SnapshotError
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights

CONFIGS = {
    "gru-h8-f1": ModelConfig(cell="gru", hidden_size=8, n_features=1),
    "lstm-h8-f2-l2": ModelConfig(cell="lstm", hidden_size=8, n_features=2, num_layers=2),
    "rnn-h8-f1-dt": ModelConfig(cell="rnn", hidden_size=8, n_features=1, time_delta_feature=True),
}


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def config(request: pytest.FixtureRequest) -> ModelConfig:
    return CONFIGS[request.param]


def make_detector(config: ModelConfig, seed: int = 0, max_streams: int = 64, version: str | None = None) -> Detector:
    weights = ModelWeights.random(config, seed=seed)
    if version is not None:
        weights = ModelWeights(config=config, params=weights.params, metadata={"version": version})
    return Detector(weights, max_streams=max_streams)


def event_batches(
    n_features: int, n_streams: int = 5, n_batches: int = 12, batch: int = 16, seed: int = 1
) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """Interleaved events of a few streams, some streams repeated inside a batch, times increasing per stream."""
    rng = np.random.default_rng(seed)
    clock = np.zeros(n_streams)
    for _ in range(n_batches):
        ids = rng.integers(0, n_streams, batch)
        times = np.empty(batch)
        for i, s in enumerate(ids):
            clock[s] += rng.exponential(1.0)
            times[i] = clock[s]
        values = (rng.normal(size=(batch, n_features)) * 3 + 10 * ids[:, None]).astype(np.float32)
        yield [f"stream-{s}" for s in ids], times, values


def assert_same(a: StepResult, b: StepResult) -> None:
    """Bitwise equality of every output (NaN in the same places counts as equal)."""
    for name in ("scores", "nll", "mean", "scale", "status"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), name


def state_of(detector: Detector, key: str) -> bytes:
    (row,) = detector.table.lookup([key])
    assert row >= 0, key
    return b"".join(column[row].tobytes() for column in detector.table.columns.values())


def test_snapshot_restore_then_continue_equals_an_uninterrupted_run(config: ModelConfig) -> None:
    batches = list(event_batches(config.n_features))
    straight = make_detector(config)
    straight_results = [straight.step(*b) for b in batches]

    first = make_detector(config)
    for b in batches[:5]:
        first.step(*b)
    resumed = make_detector(config)
    assert resumed.restore(first.snapshot()) == first.n_streams
    for b, expected in zip(batches[5:], straight_results[5:], strict=True):
        assert_same(resumed.step(*b), expected)
    for key in straight.table:
        assert state_of(resumed, key) == state_of(straight, key)


def test_partial_snapshot_moves_only_the_named_streams(config: ModelConfig) -> None:
    source = make_detector(config)
    for b in event_batches(config.n_features):
        source.step(*b)
    target = make_detector(config)
    assert target.restore(source.snapshot(["stream-1", "stream-3", "unknown"])) == 2
    assert sorted(target.table.keys()) == ["stream-1", "stream-3"]
    assert state_of(target, "stream-3") == state_of(source, "stream-3")


def test_restore_refuses_a_snapshot_of_another_layout() -> None:
    small = make_detector(CONFIGS["gru-h8-f1"])
    small.step(["a"], [0.0], [1.0])
    bigger = make_detector(ModelConfig(cell="gru", hidden_size=16))
    with pytest.raises(SnapshotError, match="recurrent|shape"):
        bigger.restore(small.snapshot())
    assert bigger.n_streams == 0


def test_seeded_runs_are_identical_and_other_seeds_differ(config: ModelConfig) -> None:
    a, b, c = make_detector(config, seed=3), make_detector(config, seed=3), make_detector(config, seed=4)
    differs = False
    for batch in event_batches(config.n_features, n_batches=4):
        ra, rb, rc = a.step(*batch), b.step(*batch), c.step(*batch)
        assert_same(ra, rb)
        differs |= not np.array_equal(ra.mean, rc.mean)
    assert differs


def test_a_batch_equals_feeding_its_events_one_at_a_time(config: ModelConfig) -> None:
    batched, single = make_detector(config), make_detector(config)
    for keys, times, values in event_batches(config.n_features, n_batches=4):
        together = batched.step(keys, times, values)
        parts = [single.step([k], times[i : i + 1], values[i : i + 1]) for i, k in enumerate(keys)]
        assert together.status.tolist() == [p.status[0] for p in parts]
        for name in ("scores", "nll", "mean", "scale"):
            joined = np.concatenate([getattr(p, name) for p in parts])
            np.testing.assert_allclose(getattr(together, name), joined, rtol=2e-5, atol=2e-6, err_msg=name)


def test_rejected_events_change_nothing_and_do_not_disturb_the_others(config: ModelConfig) -> None:
    F = config.n_features
    clean, dirty = make_detector(config), make_detector(config)
    warm_keys = ["a", "b", "c"]
    warm = (warm_keys, np.array([0.0, 0.0, 0.0]), np.ones((3, F), dtype=np.float32))
    clean.step(*warm)
    dirty.step(*warm)
    before_b = state_of(dirty, "b")

    good_keys = ["a", "c", "a"]
    good_times = np.array([1.0, 1.0, 2.0])
    good_values = np.array([[2.0] * F, [3.0] * F, [4.0] * F], dtype=np.float32)
    expected = clean.step(good_keys, good_times, good_values)

    nan_row = np.full(F, np.nan, dtype=np.float32)
    keys: list[object] = ["b", "a", "new-nan", "x" * 300, "c", "b", None, "a"]
    times = np.array([1.0, 1.0, 1.0, 1.0, 1.0, np.inf, 1.0, 2.0])
    values = np.stack([nan_row, good_values[0], nan_row, good_values[0], good_values[1], good_values[0], good_values[0],
                       good_values[2]])  # fmt: skip
    result = dirty.step(keys, times, values)
    assert result.status.tolist() == [1, 0, 1, 3, 0, 1, 3, 0]
    assert result.reasons()[:4] == ["non_finite_value", "ok", "non_finite_value", "invalid_key"]
    ok = result.accepted
    for name in ("scores", "nll", "mean", "scale"):
        assert getattr(result, name)[ok].tobytes() == getattr(expected, name).tobytes(), name
    assert (result.scores[~ok] == 0).all() and np.isnan(result.nll[~ok]).all() and np.isnan(result.mean[~ok]).all()
    assert state_of(dirty, "b") == before_b
    assert "new-nan" not in dirty.table and dirty.n_streams == 3
    for key in ("a", "c"):
        assert state_of(dirty, key) == state_of(clean, key)


def test_a_flood_of_new_keys_is_refused_while_known_streams_go_on() -> None:
    detector = make_detector(CONFIGS["gru-h8-f1"], max_streams=4)
    detector.step(["s0", "s1"], [0.0, 0.0], [1.0, 1.0])
    keys = ["s0"] + [f"flood-{i}" for i in range(50)] + ["s1"]
    result = detector.step(keys, np.ones(len(keys)), np.ones(len(keys), dtype=np.float32))
    assert result.status[0] == 0 and result.status[-1] == 0
    assert (result.status[1:3] == 0).all()  # the two free rows
    assert (result.status[3:-1] == EventStatus.TABLE_FULL).all()
    assert status_reason(int(result.status[5])) == "stream_table_full"
    assert detector.n_streams == 4


def test_eviction_then_reinsert_starts_fresh(config: ModelConfig) -> None:
    F = config.n_features
    detector = Detector(ModelWeights.random(config, seed=0), max_streams=8, idle_ttl_seconds=10.0)
    fresh = make_detector(config)
    values = np.arange(6 * F, dtype=np.float32).reshape(6, F)
    for t in range(3):
        detector.step(["idle", "busy"], [float(t), float(t)], values[2 * t : 2 * t + 2])
    detector.step(["busy"], [50.0], values[:1])
    assert detector.evict_idle(now=55.0) == 1
    assert detector.table.keys() == ["busy"]
    again = detector.step(["idle"], [60.0], values[3:4])
    assert_same(again, fresh.step(["idle"], [60.0], values[3:4]))
    with pytest.raises(DetectorError, match="ttl"):
        make_detector(config).evict_idle(now=1.0)


def test_compatible_reload_keeps_state_and_incompatible_is_refused(config: ModelConfig) -> None:
    batches = list(event_batches(config.n_features, n_batches=6))
    straight, reloaded = make_detector(config, version="v1"), make_detector(config, version="v1")
    for b in batches[:3]:
        straight.step(*b)
        reloaded.step(*b)
    streams, state_bytes = reloaded.n_streams, reloaded.state_bytes
    same = ModelWeights(config=config, params=reloaded.weights.params, metadata={"version": "v2"})
    reloaded.reload(same)
    assert reloaded.model_version == "v2"
    assert (reloaded.n_streams, reloaded.state_bytes) == (streams, state_bytes)
    assert_same(reloaded.step(*batches[3]), straight.step(*batches[3]))

    other = ModelWeights.random(config, seed=9)
    reloaded.reload(other)
    assert not np.array_equal(reloaded.step(*batches[4]).mean, straight.step(*batches[4]).mean)

    wider = ModelConfig(cell=config.cell, hidden_size=16, n_features=config.n_features)
    with pytest.raises(IncompatibleModelError, match="H=16"):
        reloaded.reload(ModelWeights.random(wider))
    assert reloaded.weights is other  # the old model stays in use
    reloaded.step(*batches[5])


def test_spikes_score_higher_than_normal_points() -> None:
    rng = np.random.default_rng(5)
    config = ModelConfig(cell="gru", hidden_size=8, n_features=1, norm_window=200)
    detector = Detector(ModelWeights.random(config, seed=2), max_streams=4)
    T = 1200
    t = np.arange(T, dtype=np.float64)
    values = np.sin(2 * np.pi * t / 50) + 0.05 * rng.normal(size=T)
    spikes = np.arange(400, T, 97)
    values[spikes] += 8.0
    scores = np.concatenate(
        [
            detector.step(["sine"] * 50, t[i : i + 50], values[i : i + 50].astype(np.float32)).scores
            for i in range(0, T, 50)
        ]
    )
    assert ((scores >= 0) & (scores <= 1)).all()
    after_spike = np.concatenate([spikes + k for k in range(12)])  # the short surprise window still holds a spike
    normal = np.setdiff1d(np.arange(400, T), after_spike)
    assert scores[spikes].min() > scores[normal].max()
    assert scores[spikes].mean() > 2 * scores[normal].mean()


def test_only_the_rows_of_accepted_events_change() -> None:
    detector = make_detector(CONFIGS["gru-h8-f1"], max_streams=16)
    detector.step([f"s{i}" for i in range(6)], np.zeros(6), np.ones(6, dtype=np.float32))
    before = {name: column.copy() for name, column in detector.table.columns.items()}
    detector.step(["s1", "s4", "s2"], [1.0, 1.0, np.nan], np.ones(3, dtype=np.float32))
    touched = detector.table.lookup(["s1", "s4"])
    for name, column in detector.table.columns.items():
        untouched = np.ones(column.shape[0], dtype=bool)
        untouched[touched] = False
        assert column[untouched].tobytes() == before[name][untouched].tobytes(), name


def test_flat_values_are_one_feature_and_shapes_are_checked() -> None:
    a, b = make_detector(CONFIGS["gru-h8-f1"]), make_detector(CONFIGS["gru-h8-f1"])
    flat = a.step(["k", "k"], [0.0, 1.0], [1.0, 2.0])
    column = b.step(["k", "k"], [0.0, 1.0], [[1.0], [2.0]])
    assert flat.mean.shape == (2,) and column.mean.shape == (2, 1)
    assert flat.mean.tobytes() == column.mean.tobytes() and flat.nll.tobytes() == column.nll.tobytes()
    with pytest.raises(BatchShapeError, match=r"\[B, 1\]"):
        a.step(["k"], [2.0], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="F=2"):
        make_detector(CONFIGS["lstm-h8-f2-l2"]).step(["k"], [0.0], [1.0])
    with pytest.raises(BatchShapeError):
        a.step(["k", "j"], [0.0], [1.0, 2.0])


def test_first_event_has_no_score_and_reports_a_forecast() -> None:
    detector = make_detector(CONFIGS["gru-h8-f1"], version="2026.11")
    result = detector.step(["k"], [0.0], [5.0])
    assert result.status[0] == 0 and result.scores[0] == 0 and np.isnan(result.nll[0])
    assert np.isfinite(result.mean[0]) and result.scale[0] > 0
    assert detector.model_version == "2026.11" and detector.n_streams == 1
    assert detector.state_bytes >= detector.table.row_nbytes


def test_an_empty_batch_is_fine() -> None:
    result = make_detector(CONFIGS["lstm-h8-f2-l2"]).step([], np.empty(0), np.empty((0, 2), dtype=np.float32))
    assert len(result) == 0 and result.mean.shape == (0, 2)


def test_read_only_inputs_are_copied_and_score_like_writable_ones(config: ModelConfig) -> None:
    """pandas copy-on-write and memory maps hand out read-only arrays; the kernel needs writable ones."""
    rng = np.random.default_rng(3)
    B, F = 40, config.n_features
    keys = [f"s{i % 3}" for i in range(B)]
    times, values = np.arange(B, dtype=np.float64), rng.normal(size=(B, F)).astype(np.float32)
    frozen_times, frozen_values = times.copy(), values.copy()
    frozen_times.flags.writeable = frozen_values.flags.writeable = False
    expected = make_detector(config).step(keys, times, values)
    got = make_detector(config).step(keys, frozen_times, frozen_values)
    assert (got.status == EventStatus.OK).all()
    np.testing.assert_array_equal(got.scores, expected.scores)
    np.testing.assert_array_equal(got.mean, expected.mean)
