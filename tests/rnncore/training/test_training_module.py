"""The torch module is the Numba model: names, shapes, export round trip, per-event parity, loss formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnncore.kernels.preprocess import normalise_sequence
from rnncore.model.config import CellType, ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.training.module import ForecastRNN, export_weights, from_weights, gaussian_nll
from tests.reference import reference_forecasts

pytestmark = pytest.mark.torch

SHAPES = [
    pytest.param(dict(num_layers=1, n_features=1, time_delta_feature=False), id="L1-F1"),
    pytest.param(dict(num_layers=2, n_features=3, time_delta_feature=True), id="L2-F3-dt"),
]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("shape", SHAPES)
def test_parameter_names_and_shapes_are_the_config(cell: CellType, shape: dict) -> None:
    config = ModelConfig(cell=cell, hidden_size=8, **shape)
    module = ForecastRNN(config)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == config.param_shapes()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_export_and_import_round_trip_exactly(cell: CellType) -> None:
    config = ModelConfig(cell=cell, hidden_size=8, num_layers=2)
    weights = ModelWeights.random(config, seed=4)
    module = from_weights(weights)
    again = export_weights(module)
    for name, array in weights.params.items():
        np.testing.assert_array_equal(again.params[name], array)
    assert again.config == config


def _held_out_stream(config: ModelConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 300
    values = np.cumsum(rng.normal(size=(n, config.n_features)), axis=0) + 20.0
    values[100] += 50.0  # an outlier that hits the input clip
    times = 1.7e9 + np.cumsum(rng.exponential(30.0, size=n))
    return values, times


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("shape", SHAPES)
def test_module_forecasts_equal_the_per_event_contract(cell: CellType, shape: dict) -> None:
    config = ModelConfig(cell=cell, hidden_size=16, dt_scale=60.0, norm_window=50, **shape)
    weights = ModelWeights.random(config, seed=7, scale=0.4)
    values, times = _held_out_stream(config, seed=11)
    seq = normalise_sequence(values, times, config)
    with torch.no_grad():
        mu, sigma, _ = from_weights(weights)(torch.from_numpy(seq.inputs)[None])
    ref_mu, ref_sigma = reference_forecasts(weights, values, times)
    assert np.max(np.abs(mu[0].numpy() - ref_mu)) <= 1e-5
    assert np.max(np.abs(sigma[0].numpy() - ref_sigma)) <= 1e-5


def test_gaussian_nll_is_the_contract_formula_and_torch_s() -> None:
    rng = np.random.default_rng(0)
    mu, target = torch.tensor(rng.normal(size=(5, 3))), torch.tensor(rng.normal(size=(5, 3)))
    sigma = torch.tensor(rng.uniform(0.1, 2.0, size=(5, 3)))
    ours = gaussian_nll(mu, sigma, target)
    z = (target - mu) / sigma
    by_hand = (0.5 * z**2 + torch.log(sigma) + 0.5 * np.log(2 * np.pi)).mean(-1)
    torch_full = torch.nn.GaussianNLLLoss(full=True, reduction="none")(mu, target, sigma**2).mean(-1)
    torch.testing.assert_close(ours, by_hand)
    torch.testing.assert_close(ours, torch_full)


def test_forecast_scale_respects_min_scale() -> None:
    config = ModelConfig(hidden_size=4, min_scale=0.25)
    module = ForecastRNN(config)
    with torch.no_grad():
        module.head.bias[1] = -1e4
        _, sigma, _ = module(torch.zeros(1, 3, 1))
    assert torch.all(sigma >= 0.25)
