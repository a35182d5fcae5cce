"""A window encoder-decoder (Malhotra et al., 2016): reconstruct the last ``W`` events of a stream from a summary.

The encoder reads the window ``x_1 .. x_W`` (values normalised by the stream's own training rows) and hands its
final state to the decoder, which reconstructs the window backwards, ``x_W`` first: step ``k`` reads the value
after the one it predicts. Training feeds the true values (teacher forcing) and then, for the last
``free_fraction`` of the epochs, the decoder's own previous prediction (run free); scoring always runs free, so
a window the network has never seen is reconstructed badly. Its per-event statistic is a reconstruction-error
vector; :mod:`bench.seq2seq` scores it by its Mahalanobis distance under normal windows.

Stacked layers are single-layer GRUs with optional layer normalisation and dropout between them (never on the
recurrent connections). Bench-side only so far: the online kernels do not run this model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rnncore.errors import TrainingError


@dataclass(frozen=True, kw_only=True)
class Seq2SeqConfig:
    """Sizes and training settings of the window encoder-decoder."""

    n_features: int = 1
    window: int = 32
    hidden_size: int = 32
    num_layers: int = 1
    layer_norm: bool = False  # between stacked layers
    dropout: float = 0.0  # between stacked layers, training only
    epochs: int = 8
    free_fraction: float = 0.25  # last share of the epochs run free (decoder fed its own predictions)
    batch_size: int = 64
    stride: int = 2  # training windows start every ``stride`` rows
    learning_rate: float = 3e-3
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window < 2 or self.hidden_size < 1 or self.n_features < 1 or not 1 <= self.num_layers <= 4:
            raise TrainingError("need window >= 2, hidden_size >= 1, n_features >= 1 and 1 <= num_layers <= 4")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.free_fraction <= 1.0):
            raise TrainingError(f"dropout must be in [0, 1) and free_fraction in [0, 1], got {self.dropout}, "
                               f"{self.free_fraction}")  # fmt: skip
        if self.epochs < 1 or self.batch_size < 1 or self.stride < 1:
            raise TrainingError("epochs, batch_size and stride must be >= 1")


class Stack(nn.Module):
    """Single-layer GRUs stacked, with optional LayerNorm and dropout on each layer's output before the next."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, layer_norm: bool, dropout: float) -> None:
        super().__init__()
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.GRU(i, hidden_size, 1, batch_first=True) for i in sizes)
        between = num_layers - 1
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) if layer_norm else nn.Identity() for _ in range(between))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x [B, T, I], state [L, B, H] or None -> (top-layer outputs [B, T, H], final state [L, B, H])."""
        finals = []
        for i, layer in enumerate(self.layers):
            x, h = layer(x, None if state is None else state[i : i + 1].contiguous())
            finals.append(h)
            if i < len(self.layers) - 1:
                x = self.drop(self.norms[i](x))
        return x, torch.cat(finals, dim=0)


class WindowAutoencoder(nn.Module):
    """Encoder-decoder over windows [B, W, F] -> reconstructions [B, W, F] (normalised units)."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        F, H, L = config.n_features, config.hidden_size, config.num_layers
        self.encoder = Stack(F, H, L, config.layer_norm, config.dropout)
        self.decoder = Stack(F, H, L, config.layer_norm, config.dropout)
        self.head = nn.Linear(H, F)

    def forward(self, window: Tensor, teacher_forcing: bool = False) -> Tensor:
        """Reconstruct ``window``; teacher forcing feeds the true next value to each decoder step, else its own."""
        _, state = self.encoder(window)
        backwards = torch.flip(window, dims=[1])  # x_W .. x_1
        first = self.head(state[-1])[:, None]  # x_W from the summary alone
        if teacher_forcing:
            outputs, _ = self.decoder(backwards[:, :-1], state)
            out = torch.cat([first, self.head(outputs)], dim=1)
        else:
            steps = [first]
            for _ in range(window.shape[1] - 1):
                output, state = self.decoder(steps[-1], state)
                steps.append(self.head(output))
            out = torch.cat(steps, dim=1)
        return torch.flip(out, dims=[1])


def windows(x: np.ndarray, window: int, stride: int = 1) -> np.ndarray:
    """Every window of ``window`` consecutive rows of ``x`` [T, F] starting every ``stride`` rows: [N, W, F]."""
    if x.shape[0] < window:
        raise TrainingError(f"{x.shape[0]} rows are fewer than one window of {window}")
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # [T - W + 1, F, W]
    return np.ascontiguousarray(np.transpose(view[::stride], (0, 2, 1)), dtype=np.float32)


def train_autoencoder(series: list[np.ndarray], config: Seq2SeqConfig) -> tuple[WindowAutoencoder, list[float]]:
    """Fit on the windows of every normalised series [T, F] (normal rows only); returns the model in eval mode
    and the mean training loss (MSE) per epoch. Seeded: the same data and config give the same model."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    data = torch.from_numpy(np.concatenate([windows(s, config.window, config.stride) for s in series]))
    model = WindowAutoencoder(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    per_epoch = math.ceil(data.shape[0] / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=per_epoch * config.epochs, eta_min=1e-4)
    free_from = config.epochs - round(config.free_fraction * config.epochs)
    history = []
    model.train()
    for epoch in range(config.epochs):
        order = torch.from_numpy(rng.permutation(data.shape[0]))
        losses = []
        for lo in range(0, data.shape[0], config.batch_size):
            batch = data[order[lo : lo + config.batch_size]]
            loss = torch.mean((model(batch, teacher_forcing=epoch < free_from) - batch) ** 2)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)))
    model.eval()
    return model, history


@torch.no_grad()
def reconstruction_errors(model: WindowAutoencoder, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Run free over the window ending at every row of ``x`` [T, F] (normalised): errors [T, W, F], NaN for the
    first ``W - 1`` rows (no full window yet)."""
    model.eval()
    W = model.config.window
    all_windows = windows(x, W)
    errors = np.full((x.shape[0], W, x.shape[1]), np.nan, dtype=np.float32)
    for lo in range(0, all_windows.shape[0], batch_size):
        batch = torch.from_numpy(all_windows[lo : lo + batch_size])
        errors[W - 1 + lo : W - 1 + lo + batch.shape[0]] = (model(batch) - batch).numpy()
    return errors
