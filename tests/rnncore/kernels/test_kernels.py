"""The fast step kernel against the slow reference: cells x depths x features x time feature, duplicates, NaN."""

from __future__ import annotations

import numpy as np
import pytest

from rnncore import kernels
from rnncore.kernels import layout
from rnncore.kernels.layout import allocate_columns
from rnncore.model.config import CellType, ModelConfig
from rnncore.model.weights import ModelWeights
from tests.reference import advance_reference

TOL = 1e-5


def random_batch(rng: np.random.Generator, B: int, n_streams: int, F: int, t0: float, bad_fraction: float = 0.0):
    """Rows with repeats, increasing-ish times (some out of order), values, and a sprinkle of NaN/inf events."""
    rows = rng.integers(0, n_streams, B).astype(np.int64)
    times = t0 + np.cumsum(rng.exponential(0.5, B)) - rng.uniform(0, 0.3, B)
    values = (rng.normal(size=(B, F)) * rng.uniform(0.5, 3.0) + rng.normal(0, 5)).astype(np.float32)
    if bad_fraction:
        bad = rng.random(B) < bad_fraction
        kinds = rng.integers(0, 4, B)
        for i in np.flatnonzero(bad):
            if kinds[i] == 0:
                times[i] = np.nan
            elif kinds[i] == 1:
                times[i] = np.inf
            else:
                values[i, rng.integers(0, F)] = np.nan if kinds[i] == 2 else -np.inf
    return rows, times, values


def assert_same_state(a: dict[str, np.ndarray], b: dict[str, np.ndarray], tol: float = TOL) -> None:
    for name in (layout.RECURRENT, layout.FORECAST, layout.NORM):
        np.testing.assert_allclose(a[name], b[name], rtol=tol, atol=tol, err_msg=name)
    np.testing.assert_array_equal(a[layout.COUNT], b[layout.COUNT])
    np.testing.assert_array_equal(a[layout.LAST_TIME], b[layout.LAST_TIME])
    assert not a[layout.TILE_MARK].any() and not b[layout.TILE_MARK].any()


def assert_same_output(a: kernels.StepOutput, b: kernels.StepOutput, tol: float = TOL) -> None:
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_allclose(a.nll, b.nll, rtol=tol, atol=tol, equal_nan=True)
    np.testing.assert_allclose(a.mean, b.mean, rtol=tol, atol=tol, equal_nan=True)
    np.testing.assert_allclose(a.scale, b.scale, rtol=tol, atol=tol, equal_nan=True)


def run_both(config: ModelConfig, batches, n_streams: int, seed: int = 0):
    weights = ModelWeights.random(config, seed=seed)
    model = kernels.pack(weights)
    fast, slow = allocate_columns(config, n_streams), allocate_columns(config, n_streams)
    for rows, times, values in batches:
        out_fast = kernels.StepOutput.empty(rows.size, config.n_features)
        out_slow = kernels.StepOutput.empty(rows.size, config.n_features)
        kernels.advance(model, fast, rows, times, values, out_fast)
        advance_reference(weights, slow, rows, times, values, out_slow)
        assert_same_output(out_fast, out_slow)
    assert_same_state(fast, slow)
    return fast


@pytest.mark.parametrize("time_feature", [False, True], ids=["no_dt", "dt"])
@pytest.mark.parametrize("F", [1, 3], ids=lambda f: f"F{f}")
@pytest.mark.parametrize("layers", [1, 2, 3, 4], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_fast_kernel_matches_reference(cell: CellType, layers: int, F: int, time_feature: bool) -> None:
    config = ModelConfig(cell=cell, n_features=F, hidden_size=24, num_layers=layers, time_delta_feature=time_feature)
    rng = np.random.default_rng(layers * 10 + F)
    n_streams = 40
    batches = [random_batch(rng, B, n_streams, F, 10.0 * k, bad_fraction=0.05) for k, B in enumerate([1, 7, 300, 64])]
    columns = run_both(config, batches, n_streams)
    assert columns[layout.COUNT].sum() > 0.9 * sum(b[0].size for b in batches)


def test_tiles_longer_than_one_tile_with_distinct_rows() -> None:
    config = ModelConfig(cell="gru", n_features=2, hidden_size=32, num_layers=2)
    rng = np.random.default_rng(5)
    n_streams = 3 * kernels.TILE
    batches = []
    for k in range(3):
        rows = rng.permutation(n_streams).astype(np.int64)
        times = np.full(n_streams, float(k))
        values = rng.normal(size=(n_streams, 2)).astype(np.float32)
        batches.append((rows, times, values))
    run_both(config, batches, n_streams)


def test_batch_equals_one_event_at_a_time() -> None:
    config = ModelConfig(cell="lstm", n_features=3, hidden_size=32, num_layers=2, time_delta_feature=True)
    model = kernels.pack(ModelWeights.random(config, seed=3))
    rng = np.random.default_rng(7)
    rows, times, values = random_batch(rng, 900, 50, 3, 0.0, bad_fraction=0.02)
    batched, single = allocate_columns(config, 50), allocate_columns(config, 50)
    out = kernels.StepOutput.empty(900, 3)
    kernels.advance(model, batched, rows, times, values, out)
    one = kernels.StepOutput.empty(1, 3)
    for i in range(900):
        kernels.advance(model, single, rows[i : i + 1], times[i : i + 1], values[i : i + 1], one)
        assert one.status[0] == out.status[i]
        np.testing.assert_allclose(one.mean[0], out.mean[i], rtol=1e-6, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(one.nll[0], out.nll[i], rtol=1e-6, atol=1e-6, equal_nan=True)
    assert_same_state(batched, single, tol=1e-6)


def test_invalid_events_touch_nothing_and_do_not_disturb_others() -> None:
    config = ModelConfig(cell="gru", n_features=3, hidden_size=16, num_layers=2, time_delta_feature=True)
    model = kernels.pack(ModelWeights.random(config, seed=1))
    rng = np.random.default_rng(11)
    warm_rows, warm_times, warm_values = random_batch(rng, 200, 30, 3, 0.0)
    dirty = allocate_columns(config, 31)
    kernels.advance(model, dirty, warm_rows, warm_times, warm_values, kernels.StepOutput.empty(200, 3))
    clean = {name: column.copy() for name, column in dirty.items()}
    rows, times, values = random_batch(rng, 400, 31, 3, 200.0, bad_fraction=0.2)
    rows[0] = 30  # a stream that only ever sees an invalid event
    values[0, 1] = np.nan
    rows[rows == 30] = np.where(np.arange(400) == 0, 30, 29)[rows == 30]
    out = kernels.StepOutput.empty(400, 3)
    kernels.advance(model, dirty, rows, times, values, out)
    invalid = ~(np.isfinite(times) & np.isfinite(values).all(axis=1))
    assert invalid.sum() > 40
    np.testing.assert_array_equal(out.status, invalid.astype(np.int8))
    assert np.isnan(out.nll[invalid]).all() and np.isnan(out.mean[invalid]).all() and np.isnan(out.scale[invalid]).all()
    for name in dirty:
        np.testing.assert_array_equal(dirty[name][30], clean[name][30], err_msg=name)
    valid = ~invalid
    out_valid = kernels.StepOutput.empty(int(valid.sum()), 3)
    kernels.advance(model, clean, rows[valid], times[valid], values[valid], out_valid)
    # Dropping the invalid events changes how events fall into tiles, and BLAS may sum a tile's rows in another
    # order: equal to float32 rounding, not bit for bit.
    np.testing.assert_allclose(out.mean[valid], out_valid.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.nll[valid], out_valid.nll, rtol=1e-6, atol=1e-6)
    assert_same_state(dirty, clean, tol=1e-6)


def test_first_event_has_no_surprise_and_forecasts_around_the_value() -> None:
    config = ModelConfig(cell="rnn", n_features=2, hidden_size=8)
    model = kernels.pack(ModelWeights.random(config, seed=0))
    columns = allocate_columns(config, 4)
    out = kernels.StepOutput.empty(2, 2)
    values = np.array([[5.0, -2.0], [1.0, 1.0]], dtype=np.float32)
    kernels.advance(model, columns, np.array([2, 2]), np.array([1.0, 3.5]), values, out)
    assert np.isnan(out.nll[0]) and np.isfinite(out.nll[1])
    np.testing.assert_array_equal(columns[layout.COUNT], [0, 0, 2, 0])
    assert columns[layout.LAST_TIME][2] == 3.5
    np.testing.assert_array_equal(columns[layout.NORM][2, 0], [3.0, -0.5])
    assert (out.scale > 0).all()


def test_rejects_bad_arrays_with_actionable_messages() -> None:
    config = ModelConfig(cell="gru", n_features=2, hidden_size=8)
    model = kernels.pack(ModelWeights.random(config))
    columns = allocate_columns(config, 4)
    out = kernels.StepOutput.empty(1, 2)
    rows, times, values = np.array([1]), np.array([0.0]), np.zeros((1, 2), np.float32)
    with pytest.raises(kernels.KernelInputError, match="values must be a float32"):
        kernels.advance(model, columns, rows, times, values.astype(np.float64), out)
    with pytest.raises(kernels.KernelInputError, match="rows must be a int64"):
        kernels.advance(model, columns, rows.astype(np.int32), times, values, out)
    frozen = values.copy()
    frozen.flags.writeable = False
    with pytest.raises(kernels.KernelInputError, match="values is read-only"):
        kernels.advance(model, columns, rows, times, frozen, out)
    with pytest.raises(kernels.KernelInputError, match="'tile_mark' is missing"):
        kernels.advance(model, {k: v for k, v in columns.items() if k != "tile_mark"}, rows, times, values, out)
    wrong = allocate_columns(ModelConfig(cell="gru", n_features=2, hidden_size=9), 4)
    with pytest.raises(kernels.KernelInputError, match="'recurrent'"):
        kernels.advance(model, wrong, rows, times, values, out)
    before = {name: column.copy() for name, column in columns.items()}
    with pytest.raises(kernels.KernelInputError, match="outside the state table"):
        kernels.advance(
            model, columns, np.array([0, 4]), np.zeros(2), np.zeros((2, 2), np.float32), kernels.StepOutput.empty(2, 2)
        )
    for name in columns:
        np.testing.assert_array_equal(columns[name], before[name])


def test_empty_batch_is_a_no_op() -> None:
    config = ModelConfig(cell="lstm", n_features=1, hidden_size=4)
    columns = allocate_columns(config, 2)
    kernels.advance(
        kernels.pack(ModelWeights.random(config)),
        columns,
        np.zeros(0, np.int64),
        np.zeros(0),
        np.zeros((0, 1), np.float32),
        kernels.StepOutput.empty(0, 1),
    )
    assert not any(column.any() for column in columns.values())
