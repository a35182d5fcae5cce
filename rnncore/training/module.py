"""The PyTorch twin of the Numba model: same config, parameter names, head and loss as the per-event contract.

``rnn`` is ``torch.nn.RNN/GRU/LSTM(batch_first=True)`` and ``head`` is ``nn.Linear(H, 2F)``, so the state
dict keys are exactly ``ModelConfig.param_shapes()`` and export is a copy, never a reshuffle.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights

# LSTM state is the pair (h, c); the other cells carry h alone.
RecurrentState = Tensor | tuple[Tensor, Tensor]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class AttentionState(NamedTuple):
    """Recurrent state plus the attention ring: ``ring`` [B, K, H] oldest first, right-aligned (the last
    ``fill[b]`` rows are real), ``fill`` [B] int64. ``rnncore.model.attention`` documents the online (slot) layout."""

    recurrent: RecurrentState
    ring: Tensor
    fill: Tensor


ModelState = RecurrentState | AttentionState


class RingAttention(nn.Module):
    """Softmax attention of each step's h over the last K top-layer states (itself included), no positions."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden_size, hidden_size, bias=False)
        self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        self.value = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, hidden: Tensor, ring: Tensor, fill: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """hidden [B, T, H], ring [B, K, H], fill [B] -> (context [B, T, H], new ring, new fill)."""
        B, T, H = hidden.shape
        K = ring.shape[1]
        extended = torch.cat([ring, hidden], dim=1)  # [B, K+T, H]; step t's window is positions t+1 .. t+K
        ring_valid = torch.arange(K)[None, :] >= (K - fill)[:, None]
        valid = torch.cat([ring_valid, torch.ones(B, T, dtype=torch.bool)], dim=1)
        keys = self.key(extended).unfold(1, K, 1)[:, 1:]  # [B, T, H, K]
        values = self.value(extended).unfold(1, K, 1)[:, 1:]
        mask = valid.unfold(1, K, 1)[:, 1:]  # [B, T, K]
        logits = torch.einsum("bth,bthk->btk", self.query(hidden), keys) / math.sqrt(H)
        weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
        context = torch.einsum("btk,bthk->bth", weights, values)
        return context, extended[:, -K:], torch.clamp(fill + T, max=K)


def make_recurrent_stack(config: ModelConfig, dropout: float = 0.0) -> nn.RNN | nn.GRU | nn.LSTM:
    """``torch.nn.RNN(tanh)/GRU/LSTM(batch_first=True)`` with the config's sizes (parameter names as in the config).

    ``dropout`` acts on each layer's output before the next layer (torch's ``dropout``: never on the recurrent
    connections nor after the top layer) and only in training mode, so the exported weights run unchanged online.
    """
    I, H, L = config.input_size, config.hidden_size, config.num_layers
    p = dropout if L > 1 else 0.0  # one layer: nothing between layers (torch would warn)
    if config.cell == "lstm":
        return nn.LSTM(I, H, L, batch_first=True, dropout=p)
    if config.cell == "gru":
        return nn.GRU(I, H, L, batch_first=True, dropout=p)
    return nn.RNN(I, H, L, nonlinearity="tanh", batch_first=True, dropout=p)


class ForecastRNN(nn.Module):
    """Recurrent stack plus Gaussian forecast head: inputs [B, T, I] -> (mu, sigma) [B, T, F] in normalised units.

    ``dropout``: between stacked layers in training only (:func:`make_recurrent_stack`); eval mode is the online model.
    """

    def __init__(self, config: ModelConfig, dropout: float = 0.0) -> None:
        super().__init__()
        self.config = config
        self.rnn = make_recurrent_stack(config, dropout)
        self.attention = RingAttention(config.hidden_size) if config.attention_window else None
        self.head = nn.Linear(config.head_input_size, 2 * config.n_features)

    def forward(self, inputs: Tensor, state: ModelState | None = None) -> tuple[Tensor, Tensor, ModelState]:
        """Run the sequence; returns forecast mean and scale for the next value, and the final state."""
        if self.attention is None:
            hidden, new_state = self.rnn(inputs, state)
            return (*self._head(hidden), new_state)
        if state is None:
            state = self.zero_state(inputs.shape[0])
        assert isinstance(state, AttentionState), "an attention model carries an AttentionState"
        hidden, recurrent = self.rnn(inputs, state.recurrent)
        context, ring, fill = self.attention(hidden, state.ring, state.fill)
        mu, sigma = self._head(torch.cat([hidden, context], dim=-1))
        return mu, sigma, AttentionState(recurrent, ring, fill)

    def _head(self, features: Tensor) -> tuple[Tensor, Tensor]:
        out = self.head(features)
        F = self.config.n_features
        mu = out[..., :F]
        sigma = nn.functional.softplus(out[..., F:]) + self.config.min_scale
        return mu, sigma

    def zero_state(self, batch: int) -> ModelState:
        """All-zero state for ``batch`` streams (what a new stream row starts from), ring empty if any."""
        shape = (self.config.num_layers, batch, self.config.hidden_size)
        h = torch.zeros(shape)
        recurrent: RecurrentState = (h, torch.zeros(shape)) if self.config.cell == "lstm" else h
        if self.attention is None:
            return recurrent
        ring = torch.zeros(batch, self.config.attention_window, self.config.hidden_size)
        return AttentionState(recurrent, ring, torch.zeros(batch, dtype=torch.long))


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
