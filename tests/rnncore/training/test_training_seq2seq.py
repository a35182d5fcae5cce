"""The window encoder-decoder: shapes, teacher forcing vs running free, seeded training, normal vs novel windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnncore.errors import TrainingError
from rnncore.training.seq2seq import (
    Seq2SeqConfig,
    Stack,
    WindowAutoencoder,
    reconstruction_errors,
    train_autoencoder,
    windows,
)

pytestmark = pytest.mark.torch


def _sines(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = np.sin(2 * np.pi * t / 20.0)
    return np.stack([base, 0.5 * base + 0.5 * np.cos(2 * np.pi * t / 20.0)], axis=1) + rng.normal(0, 0.05, (n, 2))


def test_windows_are_consecutive_rows() -> None:
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    w = windows(x, 4, stride=3)
    assert w.shape == (3, 4, 2)
    np.testing.assert_array_equal(w[1], x[3:7])
    with pytest.raises(TrainingError):
        windows(x, 11)


def test_first_reconstructed_step_is_the_same_with_or_without_teacher_forcing() -> None:
    """The decoder's first output (the window's last event) comes from the encoder's summary alone."""
    torch.manual_seed(0)
    model = WindowAutoencoder(Seq2SeqConfig(n_features=2, window=6, hidden_size=8, num_layers=2, layer_norm=True))
    model.eval()
    x = torch.randn(3, 6, 2)
    forced, free = model(x, teacher_forcing=True), model(x)
    assert forced.shape == free.shape == (3, 6, 2)
    torch.testing.assert_close(forced[:, -1], free[:, -1])
    assert not torch.allclose(forced[:, 0], free[:, 0])  # later steps differ: fed true values vs its own


def test_layer_norm_and_dropout_sit_between_layers_only() -> None:
    stack = Stack(2, 8, 3, layer_norm=True, dropout=0.5)
    assert len(stack.norms) == 2 and all(isinstance(n, torch.nn.LayerNorm) for n in stack.norms)
    stack.eval()
    x = torch.randn(2, 5, 2)
    torch.testing.assert_close(stack(x)[0], stack(x)[0], rtol=0, atol=0)  # no dropout in eval


def test_training_is_seeded_and_novel_windows_reconstruct_worse_than_normal_ones() -> None:
    config = Seq2SeqConfig(n_features=2, window=10, hidden_size=16, epochs=6, stride=2, batch_size=32)
    normal = _sines(1200, 0).astype(np.float32)
    model, history = train_autoencoder([normal], config)
    again, _ = train_autoencoder([normal], config)
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert history[-1] < 0.5 * history[0]
    held = _sines(300, 1).astype(np.float32)
    broken = held.copy()
    broken[150:, 1] = -broken[150:, 1]  # the two sensors' relation flips
    normal_err = np.nanmean(reconstruction_errors(model, held)[160:] ** 2)
    broken_err = np.nanmean(reconstruction_errors(model, broken)[160:] ** 2)
    assert np.isnan(reconstruction_errors(model, held)[:9]).all()
    assert broken_err > 3 * normal_err
