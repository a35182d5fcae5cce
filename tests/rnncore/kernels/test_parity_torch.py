"""Parity with PyTorch: the Numba step equals torch.nn.RNN/GRU/LSTM + nn.Linear head over 1,000 steps.

50 streams, events interleaved at random and fed through ``advance`` in batches of random size (so a
stream repeats inside batches); torch runs each stream's whole sequence on the same normalised inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnncore import kernels
from rnncore.kernels import layout
from rnncore.kernels.layout import allocate_columns
from rnncore.model.config import CellType, ModelConfig
from rnncore.model.weights import ModelWeights

pytestmark = pytest.mark.torch

STREAMS, STEPS, TOL = 50, 1000, 1e-5


def stream_data(rng: np.random.Generator, F: int) -> tuple[np.ndarray, np.ndarray]:
    """times [S, T] increasing per stream; values [S, T, F] around 0 with scale ~1, a drift and spikes."""
    times = np.cumsum(rng.exponential(1.0, (STREAMS, STEPS)), axis=1)
    phase = rng.uniform(0, 6.3, (STREAMS, 1, F))
    steps = np.arange(STEPS)[None, :, None]
    values = np.sin(steps / 25.0 + phase) + 0.3 * rng.normal(size=(STREAMS, STEPS, F))
    values[rng.random(values.shape) < 0.005] += 8.0
    return times, values.astype(np.float32)


def causal_inputs(config: ModelConfig, times: np.ndarray, values: np.ndarray):
    """Contract steps 1, 3, 4 per stream (float64 maths, float32 storage): inputs [S, T, I], mean/sd [S, T, F]."""
    S, T, F = values.shape
    eps = config.norm_eps
    m = np.zeros((S, F), np.float32)
    var = np.zeros((S, F), np.float32)
    inputs = np.zeros((S, T, config.input_size), np.float32)
    mean, sd = np.zeros((S, T, F)), np.zeros((S, T, F))
    for t in range(T):
        alpha = max(1.0 / (t + 1), 1.0 / config.norm_window)
        v = values[:, t].astype(np.float64)
        delta = v - m
        m = (m + alpha * delta).astype(np.float32)
        var = ((1.0 - alpha) * (var + alpha * delta**2)).astype(np.float32)
        mean[:, t], sd[:, t] = m, np.sqrt(var.astype(np.float64) + eps)
        inputs[:, t, :F] = np.clip((v - m) / sd[:, t], -config.input_clip, config.input_clip)
        if config.time_delta_feature:
            dt = np.maximum(times[:, t] - times[:, t - 1], 0.0) if t > 0 else np.zeros(S)
            inputs[:, t, F] = np.log1p(dt / config.dt_scale)
    return inputs, mean, sd


def torch_forward(weights: ModelWeights, inputs: np.ndarray):
    """The torch model built from the same named parameters: per-step hidden outputs, mu, sigma, final state."""
    config = weights.config
    torch.set_default_dtype(torch.float32)
    module_type = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[config.cell]
    rnn = module_type(config.input_size, config.hidden_size, num_layers=config.num_layers, batch_first=True)
    head = torch.nn.Linear(config.hidden_size, 2 * config.n_features)
    params = {name: torch.from_numpy(np.array(array)) for name, array in weights.params.items()}
    rnn.load_state_dict({name.removeprefix("rnn."): p for name, p in params.items() if name.startswith("rnn.")})
    head.load_state_dict({name.removeprefix("head."): p for name, p in params.items() if name.startswith("head.")})
    with torch.inference_mode():
        hidden, final = rnn(torch.from_numpy(inputs))
        o = head(hidden).double()
    F = config.n_features
    mu = o[..., :F].numpy()
    sigma = (torch.nn.functional.softplus(o[..., F:]) + config.min_scale).numpy()
    h_n = final[0].numpy() if config.cell == "lstm" else final.numpy()
    c_n = final[1].numpy() if config.cell == "lstm" else None
    return mu, sigma, h_n, c_n


@pytest.mark.parametrize("layers", [1, 2, 3], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_advance_matches_torch_over_1000_steps(cell: CellType, layers: int) -> None:
    config = ModelConfig(cell=cell, n_features=2, hidden_size=32, num_layers=layers, time_delta_feature=True)
    weights = ModelWeights.random(config, seed=layers)
    rng = np.random.default_rng(layers)
    times, values = stream_data(rng, config.n_features)
    inputs, mean, sd = causal_inputs(config, times, values)
    mu, sigma, h_n, c_n = torch_forward(weights, inputs)

    order = rng.permutation(np.repeat(np.arange(STREAMS), STEPS)).astype(np.int64)
    step_of = np.zeros_like(order)
    seen = np.zeros(STREAMS, np.int64)
    for k, s in enumerate(order):
        step_of[k], seen[s] = seen[s], seen[s] + 1
    model, columns = kernels.pack(weights), allocate_columns(config, STREAMS)
    got_mean = np.empty((order.size, config.n_features), np.float32)
    got_scale = np.empty_like(got_mean)
    start = 0
    while start < order.size:
        stop = min(order.size, start + int(rng.integers(1, 700)))
        rows, steps = order[start:stop], step_of[start:stop]
        out = kernels.StepOutput.empty(rows.size, config.n_features)
        kernels.advance(model, columns, rows, times[rows, steps], values[rows, steps], out)
        assert not out.status.any()
        got_mean[start:stop], got_scale[start:stop] = out.mean, out.scale
        start = stop

    want_mean = mean[order, step_of] + mu[order, step_of] * sd[order, step_of]
    want_scale = sigma[order, step_of] * sd[order, step_of]
    assert np.abs(got_mean - want_mean).max() <= TOL
    assert np.abs(got_scale - want_scale).max() <= TOL
    state = columns[layout.RECURRENT]
    assert np.abs(state[:, :, 0] - h_n.transpose(1, 0, 2)).max() <= TOL
    if c_n is not None:
        assert np.abs(state[:, :, 1] - c_n.transpose(1, 0, 2)).max() <= TOL
    forecast = columns[layout.FORECAST]
    assert np.abs(forecast[:, 0] - mu[:, -1]).max() <= TOL
    assert np.abs(forecast[:, 1] - sigma[:, -1]).max() <= TOL
    assert math.isclose(float(columns[layout.COUNT].sum()), STREAMS * STEPS)
