"""Attention head: torch module == numpy reference across arbitrary chunk (batch) boundaries, ring order,
empty slots ignored, snapshot/restore, artifact round trip, and training with the ring carried."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rnncore.errors import ConfigError
from rnncore.kernels.preprocess import normalise_sequence
from rnncore.model.artifact import load_artifact, save_artifact
from rnncore.model.attention import (
    FILL_COLUMN,
    NEXT_COLUMN,
    RING_COLUMN,
    allocate_rings,
    attend_batch,
    attend_step,
    ordered_ring,
    ring_bytes_per_stream,
)
from rnncore.model.config import CellType, ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.training.module import AttentionState, from_weights
from tests.reference import reference_forecasts

pytestmark = pytest.mark.torch


def _config(cell: CellType = "gru", K: int = 5) -> ModelConfig:
    return ModelConfig(
        cell=cell, hidden_size=8, n_features=2, num_layers=2, attention_window=K, time_delta_feature=True
    )


def _stream(T: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(T, 2)) * [1.0, 5.0], np.cumsum(rng.uniform(0.1, 2.0, T))


def _torch_in_chunks(
    weights: ModelWeights, inputs: np.ndarray, cuts: list[int]
) -> tuple[np.ndarray, np.ndarray, object]:
    module = from_weights(weights)
    state = None
    mus, sigmas = [], []
    with torch.no_grad():
        for lo, hi in zip([0, *cuts], [*cuts, len(inputs)], strict=True):
            mu, sigma, state = module(torch.from_numpy(inputs[lo:hi])[None], state)
            mus.append(mu[0].numpy())
            sigmas.append(sigma[0].numpy())
    return np.concatenate(mus), np.concatenate(sigmas), state


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_torch_equals_numpy_reference_across_chunk_boundaries(cell: CellType) -> None:
    weights = ModelWeights.random(_config(cell), seed=7, scale=0.6)
    values, times = _stream(300)
    seq = normalise_sequence(values, times, weights.config)
    mu_ref, sigma_ref = reference_forecasts(weights, values, times)
    cuts = [1, 3, 4, 37, 38, 120, 299]  # chunks shorter and longer than K, and single events
    mu, sigma, _ = _torch_in_chunks(weights, seq.inputs, cuts)
    np.testing.assert_allclose(mu, mu_ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(sigma, sigma_ref, atol=1e-5, rtol=0)
    plain = ModelWeights(
        config=ModelConfig(**{**weights.config.to_dict(), "attention_window": 0}),
        params={
            **{k: v for k, v in weights.params.items() if not k.startswith(("attention", "head"))},
            "head.weight": weights.params["head.weight"][:, :8],
            "head.bias": weights.params["head.bias"],
        },
    )
    assert not np.allclose(mu, reference_forecasts(plain, values, times)[0], atol=1e-3)  # the context matters


def test_ring_order_and_contents_across_batches_of_interleaved_streams() -> None:
    config = _config(K=4)
    weights = ModelWeights.random(config, seed=1)
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(3, 11, 8)).astype(np.float32)  # 3 streams x 11 states
    events = [(s, t) for t in range(11) for s in range(3)]
    order = sorted(range(len(events)), key=lambda i: (events[i][1], rng.random()))  # interleaved, per-stream order kept
    columns = allocate_rings(config, 3)
    contexts = np.empty((3, 11, 8))
    position = 0
    for size in (1, 5, 2, 13, 12):  # arbitrary batch boundaries
        batch = [events[i] for i in order[position : position + size]]
        rows = np.array([s for s, _ in batch])
        out = attend_batch(weights.params, columns, rows, np.stack([hidden[s, t] for s, t in batch]))
        for (s, t), context in zip(batch, out, strict=True):
            contexts[s, t] = context
        position += size
    for s in range(3):
        np.testing.assert_array_equal(
            ordered_ring(columns[RING_COLUMN][s], int(columns[NEXT_COLUMN][s]), int(columns[FILL_COLUMN][s])),
            hidden[s, -4:],
        )
        assert int(columns[NEXT_COLUMN][s]) == 11 % 4 and int(columns[FILL_COLUMN][s]) == 4
        one = allocate_rings(config, 1)  # the same stream alone, one event at a time
        alone = np.stack([attend_step(weights.params, one, 0, hidden[s, t]) for t in range(11)])
        np.testing.assert_array_equal(contexts[s], alone)


def test_empty_slots_get_no_weight() -> None:
    config = _config(K=6)
    weights = ModelWeights.random(config, seed=2)
    h = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    clean, dirty = allocate_rings(config, 1), allocate_rings(config, 1)
    dirty[RING_COLUMN][0, 3:] = 100.0  # garbage where nothing was pushed yet
    for t in range(3):
        np.testing.assert_array_equal(
            attend_step(weights.params, clean, 0, h[t]), attend_step(weights.params, dirty, 0, h[t])
        )


def test_restore_after_snapshot_equals_an_uninterrupted_run() -> None:
    config = _config(K=5)
    weights = ModelWeights.random(config, seed=3)
    h = np.random.default_rng(2).normal(size=(40, 8)).astype(np.float32)
    running = allocate_rings(config, 1)
    uninterrupted = [attend_step(weights.params, running, 0, x) for x in h]
    first = allocate_rings(config, 1)
    for x in h[:17]:
        attend_step(weights.params, first, 0, x)
    snapshot = {name: array.tobytes() for name, array in first.items()}
    restored = {
        name: np.frombuffer(snapshot[name], dtype=array.dtype).reshape(array.shape).copy()
        for name, array in first.items()
    }
    resumed = [attend_step(weights.params, restored, 0, x) for x in h[17:]]
    np.testing.assert_array_equal(np.stack(resumed), np.stack(uninterrupted[17:]))


def test_torch_ring_state_matches_the_online_layout() -> None:
    weights = ModelWeights.random(_config(K=4), seed=5)
    values, times = _stream(30, seed=3)
    seq = normalise_sequence(values, times, weights.config)
    module = from_weights(weights)
    _, _, state = _torch_in_chunks(weights, seq.inputs, [2, 9])
    assert isinstance(state, AttentionState)
    with torch.no_grad():
        hidden, _ = module.rnn(torch.from_numpy(seq.inputs)[None])
    np.testing.assert_allclose(state.ring[0].numpy(), hidden[0, -4:].numpy(), atol=1e-6)
    assert int(state.fill[0]) == 4


def test_memory_per_stream_and_config_rules() -> None:
    assert ring_bytes_per_stream(ModelConfig(hidden_size=64, attention_window=32)) == 4 * 32 * 64 + 8
    assert ring_bytes_per_stream(ModelConfig()) == 0
    assert ModelConfig(attention_window=16).param_shapes()["head.weight"] == (2, 128)
    with pytest.raises(ConfigError, match="attention_window"):
        ModelConfig(attention_window=-1)
    with pytest.raises(ConfigError, match="bidirectional"):
        ModelConfig(attention_window=4, direction="bidirectional")


def test_attention_artifact_round_trip(tmp_path: Path) -> None:
    weights = ModelWeights.random(_config(K=16), seed=4)
    save_artifact(tmp_path, weights)
    loaded = load_artifact(tmp_path)
    assert loaded.config.attention_window == 16
    for name, array in weights.params.items():
        np.testing.assert_array_equal(loaded.params[name], array)


def test_training_with_attention_carries_the_ring_and_exports_a_reference_equal_model() -> None:
    from rnncore.training.dataset import build_dataset
    from rnncore.training.trainer import TrainConfig, train
    from stream.data.synthetic import generate_fleet

    config = ModelConfig(hidden_size=8, attention_window=8)
    records = list(generate_fleet(3, 200, seed=0).records())
    dataset = build_dataset(records, config)
    settings = TrainConfig(epochs=1, bptt=16, segment_length=64, warmup=8, batch_size=4, progress=False, threads=1)
    result = train(dataset, config, settings)
    stream = dataset.streams[0]
    mu_ref, _ = reference_forecasts(result.weights, stream.seq.values, stream.seq.times)
    with torch.no_grad():
        mu, _, _ = from_weights(result.weights)(torch.from_numpy(stream.seq.inputs)[None])
    np.testing.assert_allclose(mu[0].numpy(), mu_ref, atol=1e-5)
    assert np.isfinite(result.report.model.nll)
