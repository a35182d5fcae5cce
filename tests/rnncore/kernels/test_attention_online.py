"""The attention head online: Numba kernel == torch to 1e-5 with interleaved streams and random batches, ring
order exact across batch boundaries, snapshot/restore == an uninterrupted run, memory per stream, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnncore import kernels
from rnncore.detector import Detector
from rnncore.errors import IncompatibleModelError, NonCausalModelError, SnapshotError
from rnncore.kernels import KernelInputError, layout
from rnncore.kernels.layout import allocate_columns, bytes_per_row, state_schema
from rnncore.kernels.preprocess import normalise_sequence
from rnncore.model.attention import FILL_COLUMN, NEXT_COLUMN, RING_COLUMN, ordered_ring, ring_bytes_per_stream
from rnncore.model.config import CellType, ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.training.module import AttentionState, from_weights

pytestmark = pytest.mark.torch

STREAMS, STEPS, TOL = 12, 300, 1e-5


def _config(cell: CellType = "gru", K: int = 6, layers: int = 2) -> ModelConfig:
    return ModelConfig(
        cell=cell, hidden_size=16, n_features=2, num_layers=layers, attention_window=K, time_delta_feature=True
    )


def _streams(seed: int = 0, steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """times [S, T] increasing per stream, values [S, T, 2] with a cycle, noise and a few spikes."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1.0, (STREAMS, steps)), axis=1)
    phase = rng.uniform(0, 6.3, (STREAMS, 1, 2))
    values = np.sin(np.arange(steps)[None, :, None] / 15.0 + phase) + 0.3 * rng.normal(size=(STREAMS, steps, 2))
    values[rng.random(values.shape) < 0.01] += 6.0
    return times, values.astype(np.float32)


def _arrival_order(rng: np.random.Generator, steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """A random interleaving of every stream's events (each stream's own order kept): rows and step numbers."""
    order = rng.permutation(np.repeat(np.arange(STREAMS), steps)).astype(np.int64)
    step_of = np.zeros_like(order)
    seen = np.zeros(STREAMS, np.int64)
    for k, s in enumerate(order):
        step_of[k], seen[s] = seen[s], seen[s] + 1
    return order, step_of


def _feed(
    weights: ModelWeights, times: np.ndarray, values: np.ndarray, order: np.ndarray, step_of: np.ndarray, sizes
) -> tuple[dict[str, np.ndarray], kernels.StepOutput]:
    """Advance the events in ``order`` through ``kernels.advance`` in batches of the sizes ``sizes`` yields."""
    model, columns = kernels.pack(weights), allocate_columns(weights.config, STREAMS)
    F = weights.config.n_features
    total = kernels.StepOutput.empty(order.size, F)
    start = 0
    while start < order.size:
        stop = min(order.size, start + int(next(sizes)))
        rows, steps = order[start:stop], step_of[start:stop]
        out = kernels.StepOutput.empty(rows.size, F)
        kernels.advance(model, columns, rows, times[rows, steps], np.ascontiguousarray(values[rows, steps]), out)
        for name in ("nll", "mean", "scale", "status"):
            getattr(total, name)[start:stop] = getattr(out, name)
        start = stop
    return columns, total


def _torch(weights: ModelWeights, times: np.ndarray, values: np.ndarray):
    """Per stream: torch module outputs (mu, sigma [T, F]), top-layer hidden [T, H], final state; plus stats."""
    module = from_weights(weights)
    results = []
    for s in range(STREAMS):
        seq = normalise_sequence(values[s].astype(np.float64), times[s], weights.config)
        with torch.no_grad():
            mu, sigma, state = module(torch.from_numpy(seq.inputs)[None])
            hidden, _ = module.rnn(torch.from_numpy(seq.inputs)[None])
        results.append((mu[0].double().numpy(), sigma[0].double().numpy(), hidden[0].numpy(), state, seq))
    return results


def _random_sizes(rng: np.random.Generator, high: int):
    while True:
        yield rng.integers(1, high)


@pytest.mark.parametrize("K", [1, 6, 32], ids=lambda k: f"K{k}")
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_numba_attention_matches_torch_with_interleaved_streams(cell: CellType, K: int) -> None:
    weights = ModelWeights.random(_config(cell, K), seed=K, scale=0.5)
    times, values = _streams(seed=K)
    rng = np.random.default_rng(K)
    order, step_of = _arrival_order(rng)
    columns, out = _feed(weights, times, values, order, step_of, _random_sizes(rng, 400))
    assert not out.status.any()
    reference = _torch(weights, times, values)
    mean = np.stack([r[4].mean for r in reference])
    sd = np.stack([r[4].std for r in reference])
    mu, sigma = np.stack([r[0] for r in reference]), np.stack([r[1] for r in reference])
    want_mean = mean[order, step_of] + mu[order, step_of] * sd[order, step_of]
    want_scale = sigma[order, step_of] * sd[order, step_of]
    assert np.abs(out.mean - want_mean).max() <= TOL
    assert np.abs(out.scale - want_scale).max() <= TOL
    # surprise of event t from the forecast after t-1 in normalised units (unclipped), as the contract defines it
    targets = (values[:, 1:].astype(np.float64) - mean[:, :-1]) / sd[:, :-1]
    z = (targets - mu[:, :-1]) / sigma[:, :-1]
    nll = np.full((STREAMS, STEPS), np.nan)
    nll[:, 1:] = (0.5 * z * z + np.log(sigma[:, :-1]) + 0.5 * np.log(2 * np.pi)).mean(axis=-1)
    first = step_of == 0
    assert np.isnan(out.nll[first]).all()
    np.testing.assert_allclose(out.nll[~first], nll[order, step_of][~first], atol=TOL, rtol=TOL)  # float32 nll
    for s, (_, _, hidden, state, _) in enumerate(reference):
        assert isinstance(state, AttentionState)
        ring = ordered_ring(columns[RING_COLUMN][s], int(columns[NEXT_COLUMN][s]), int(columns[FILL_COLUMN][s]))
        assert np.abs(ring - state.ring[0].numpy()).max() <= TOL  # torch keeps its ring oldest first
        assert np.abs(ring - hidden[-K:]).max() <= TOL
        h_torch = state.recurrent[0] if cell == "lstm" else state.recurrent
        assert np.abs(columns[layout.RECURRENT][s, :, 0] - h_torch[:, 0].numpy()).max() <= TOL


def test_ring_order_and_results_do_not_depend_on_batch_boundaries() -> None:
    weights = ModelWeights.random(_config(K=5), seed=1, scale=0.5)
    steps = 23  # not a multiple of K, and some streams below K events
    times, values = _streams(seed=1, steps=steps)
    rng = np.random.default_rng(2)
    order, step_of = _arrival_order(rng, steps)
    cut = np.flatnonzero(step_of < np.where(order % 3 == 0, 3, steps))  # streams 0, 3, ...: 3 events only
    order, step_of = order[cut], step_of[cut]
    one_by_one, out_one = _feed(weights, times, values, order, step_of, iter(lambda: 1, 0))
    batched, out_batched = _feed(weights, times, values, order, step_of, _random_sizes(rng, 40))
    for name in one_by_one:
        np.testing.assert_array_equal(batched[name], one_by_one[name], err_msg=name)
    np.testing.assert_array_equal(out_batched.mean, out_one.mean)
    np.testing.assert_array_equal(out_batched.nll, out_one.nll)
    reference = _torch(weights, times[:, :steps], values[:, :steps])
    for s in range(STREAMS):
        n = 3 if s % 3 == 0 else steps
        fill, nxt = int(batched[FILL_COLUMN][s]), int(batched[NEXT_COLUMN][s])
        assert (fill, nxt) == (min(n, 5), n % 5)
        ring = ordered_ring(batched[RING_COLUMN][s], nxt, fill)
        hidden = reference[s][2][:n]  # torch's top-layer states of the stream's first n events
        assert np.abs(ring - hidden[-5:]).max() <= TOL  # oldest first, the newest last
        if n < 5:
            assert not batched[RING_COLUMN][s, n:].any()  # slots never written stay empty


def test_empty_slots_and_invalid_events_do_not_change_the_result() -> None:
    weights = ModelWeights.random(_config(K=8), seed=3)
    model = kernels.pack(weights)
    clean, dirty = allocate_columns(weights.config, 1), allocate_columns(weights.config, 1)
    dirty[RING_COLUMN][0] = 50.0  # garbage in the slots nothing was pushed to yet
    times, values = _streams(seed=3, steps=6)
    for t in range(6):
        for columns in (clean, dirty):
            out = kernels.StepOutput.empty(1, 2)
            kernels.advance(model, columns, np.zeros(1, np.int64), times[0, t : t + 1], values[0, t : t + 1], out)
        np.testing.assert_array_equal(clean[layout.FORECAST], dirty[layout.FORECAST])
    before = {name: array.copy() for name, array in clean.items()}
    out = kernels.StepOutput.empty(2, 2)
    bad_values = np.array([[np.nan, 0.0], [1.0, 1.0]], np.float32)
    kernels.advance(model, clean, np.zeros(2, np.int64), np.array([100.0, np.inf]), bad_values, out)
    assert out.status.tolist() == [kernels.STATUS_INVALID, kernels.STATUS_INVALID]
    for name, array in before.items():
        np.testing.assert_array_equal(clean[name], array, err_msg=name)


def test_detector_snapshot_restore_equals_an_uninterrupted_run() -> None:
    weights = ModelWeights.random(_config(cell="lstm", K=7), seed=4, scale=0.5)
    times, values = _streams(seed=4, steps=60)
    keys = [f"pump-{s}" for s in range(STREAMS)]
    rng = np.random.default_rng(4)
    order, step_of = _arrival_order(rng, 60)
    batches = np.array_split(np.arange(order.size), 17)

    def run(detector: Detector, chosen: list[np.ndarray]) -> list[np.ndarray]:
        scores = []
        for idx in chosen:
            rows, steps = order[idx], step_of[idx]
            result = detector.step([keys[r] for r in rows], times[rows, steps], values[rows, steps])
            scores.append(np.stack([result.scores, result.nll, result.mean[:, 0], result.scale[:, 1]]))
        return scores

    uninterrupted = run(Detector(weights, max_streams=STREAMS), batches)
    first = Detector(weights, max_streams=STREAMS)
    run(first, batches[:8])
    snapshot = first.snapshot()
    assert {RING_COLUMN, NEXT_COLUMN, FILL_COLUMN} <= set(first.table.columns)
    second = Detector(weights, max_streams=STREAMS)
    assert second.restore(snapshot) == STREAMS
    resumed = run(second, batches[8:])
    for got, want in zip(resumed, uninterrupted[8:], strict=True):
        np.testing.assert_array_equal(got, want)
    plain = ModelWeights.random(ModelConfig(cell="lstm", hidden_size=16, n_features=2, num_layers=2), seed=0)
    with pytest.raises(SnapshotError, match=RING_COLUMN):
        Detector(plain, max_streams=STREAMS).restore(snapshot)


def test_memory_per_stream_is_the_plain_row_plus_the_ring() -> None:
    config = ModelConfig(hidden_size=64, attention_window=32)
    plain = ModelConfig(hidden_size=64)
    assert bytes_per_row(config) == bytes_per_row(plain) + ring_bytes_per_stream(config) == bytes_per_row(plain) + 8200
    assert set(state_schema(config)) - set(state_schema(plain)) == {RING_COLUMN, NEXT_COLUMN, FILL_COLUMN}
    detector = Detector(ModelWeights.random(config), max_streams=4)
    assert detector.table.row_nbytes - Detector(ModelWeights.random(plain), max_streams=4).table.row_nbytes == 8200


def test_reload_across_attention_settings_is_refused_and_keeps_the_model() -> None:
    config = _config(K=4)
    detector = Detector(ModelWeights.random(config, seed=0), max_streams=2)
    detector.step(["a"], [0.0], np.zeros((1, 2), np.float32))
    other = ModelWeights.random(ModelConfig(**{**config.to_dict(), "attention_window": 8}), seed=0)
    with pytest.raises(IncompatibleModelError, match="attention_window=4 in use"):
        detector.reload(other)
    assert detector.weights.config.attention_window == 4
    detector.reload(ModelWeights.random(config, seed=1))  # same layout: fine, state kept
    assert detector.n_streams == 1


def test_a_bad_ring_column_is_named() -> None:
    weights = ModelWeights.random(_config(K=4), seed=0)
    columns = allocate_columns(weights.config, 2)
    columns[FILL_COLUMN] = columns[FILL_COLUMN].astype(np.int64)
    out = kernels.StepOutput.empty(1, 2)
    with pytest.raises(KernelInputError, match=FILL_COLUMN):
        kernels.advance(kernels.pack(weights), columns, np.zeros(1, np.int64), np.zeros(1), np.zeros((1, 2), "f4"), out)
    del columns[FILL_COLUMN]
    with pytest.raises(KernelInputError, match=FILL_COLUMN):
        kernels.advance(kernels.pack(weights), columns, np.zeros(1, np.int64), np.zeros(1), np.zeros((1, 2), "f4"), out)
    columns = allocate_columns(weights.config, 2)
    with pytest.raises(KernelInputError, match="outside the state table"):
        kernels.advance(
            kernels.pack(weights), columns, np.full(1, 5, np.int64), np.zeros(1), np.zeros((1, 2), "f4"), out
        )


def test_the_detector_refuses_a_bidirectional_model() -> None:
    weights = ModelWeights.random(ModelConfig(hidden_size=8, direction="bidirectional"), seed=0)
    with pytest.raises(NonCausalModelError, match="needs a causal model"):
        Detector(weights)
    detector = Detector(ModelWeights.random(ModelConfig(hidden_size=8), seed=0))
    with pytest.raises(NonCausalModelError, match="model reload"):
        detector.reload(weights)
