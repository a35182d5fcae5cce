"""The PyTorch twin of the Numba model: same config, parameter names, head and loss as the per-event contract.

``rnn`` is ``torch.nn.RNN/GRU/LSTM(batch_first=True)`` and ``head`` is ``nn.Linear(H, 2F)``, so the state
dict keys are exactly ``ModelConfig.param_shapes()`` and export is a copy, never a reshuffle.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from rnncore.config import ModelConfig
from rnncore.model import ModelWeights

# LSTM state is the pair (h, c); the other cells carry h alone.
RecurrentState = Tensor | tuple[Tensor, Tensor]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class ForecastRNN(nn.Module):
    """Recurrent stack plus Gaussian forecast head: inputs [B, T, I] -> (mu, sigma) [B, T, F] in normalised units."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        I, H, L = config.input_size, config.hidden_size, config.num_layers
        self.rnn: nn.RNN | nn.GRU | nn.LSTM
        if config.cell == "lstm":
            self.rnn = nn.LSTM(I, H, L, batch_first=True)
        elif config.cell == "gru":
            self.rnn = nn.GRU(I, H, L, batch_first=True)
        else:
            self.rnn = nn.RNN(I, H, L, nonlinearity="tanh", batch_first=True)
        self.head = nn.Linear(config.hidden_size, 2 * config.n_features)

    def forward(self, inputs: Tensor, state: RecurrentState | None = None) -> tuple[Tensor, Tensor, RecurrentState]:
        """Run the sequence; returns forecast mean and scale for the next value, and the final state."""
        hidden, new_state = self.rnn(inputs, state)
        out = self.head(hidden)
        F = self.config.n_features
        mu = out[..., :F]
        sigma = nn.functional.softplus(out[..., F:]) + self.config.min_scale
        return mu, sigma, new_state

    def zero_state(self, batch: int) -> RecurrentState:
        """All-zero recurrent state for ``batch`` streams (what a new stream row starts from)."""
        shape = (self.config.num_layers, batch, self.config.hidden_size)
        h = torch.zeros(shape)
        return (h, torch.zeros(shape)) if self.config.cell == "lstm" else h


def gaussian_nll(mu: Tensor, sigma: Tensor, target: Tensor) -> Tensor:
    """Per-step Gaussian NLL averaged over features: mean_f(0.5 z^2 + log sigma + 0.5 log 2pi), shape [..., ]."""
    z = (target - mu) / sigma
    return (0.5 * z * z + torch.log(sigma) + _HALF_LOG_2PI).mean(dim=-1)


def export_weights(module: ForecastRNN) -> ModelWeights:
    """Copy a module's parameters into validated float32 ``ModelWeights`` for the Numba core and artifacts."""
    state = module.state_dict()
    params = {name: state[name].detach().cpu().numpy().astype(np.float32) for name in module.config.param_shapes()}
    return ModelWeights(config=module.config, params=params)


def from_weights(weights: ModelWeights) -> ForecastRNN:
    """Build a module holding exactly ``weights`` (e.g. to fine-tune or compare with the Numba core)."""
    module = ForecastRNN(weights.config)
    state = {name: torch.from_numpy(np.array(array, copy=True)) for name, array in weights.params.items()}
    module.load_state_dict(state, strict=True)
    return module
