"""Bidirectional (non-causal) rescoring for backtests and incident review: inputs, refusal, scores. No torch.

A bidirectional model (``ModelConfig.direction == "bidirectional"``) explains event ``t`` from both sides:
row ``t`` of its output is a Gaussian for event ``t+1`` (same target as the causal model:
``clip((v_{t+1} - m_t) / sqrt(var_t + eps))``, the stats after event ``t``) computed from the forward state
after events ``0..t`` and the backward state after events ``T-1..t+2`` (zero when ``t+2 >= T``); so it
interpolates, it never sees the value it forecasts. The backward stack's inputs are normalised causally in
*reverse* time (stats of events ``T-1..s`` only): with forward-time stats, every later input would carry
the forecast value through the running mean and variance.

Such a model may use events after the one it scores, so the service and ``rnnwatch bench nab`` (NAB forbids
look-ahead) must refuse it: call :func:`ensure_causal` wherever an artifact enters a causal path.
"""

from __future__ import annotations

import math

import numpy as np

from rnncore.errors import NonCausalModelError
from rnncore.kernels.preprocess import normalise_sequence
from rnncore.model.config import ModelConfig

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def ensure_causal(config: ModelConfig, where: str) -> None:
    """Raise ``NonCausalModelError`` naming ``where`` when ``config`` is a bidirectional model."""
    if config.bidirectional:
        raise NonCausalModelError(
            f"{where} needs a causal model, but this artifact is bidirectional (each score may use later "
            f"events); use it only offline with `rnnwatch score --bidirectional`, or train a causal model "
            f"(`rnnwatch train` without --bidirectional)"
        )


def ensure_bidirectional(config: ModelConfig, where: str) -> None:
    """Raise ``NonCausalModelError`` when a bidirectional path is given a causal (forward-only) model."""
    if not config.bidirectional:
        raise NonCausalModelError(
            f"{where} needs a bidirectional model (`rnnwatch train --bidirectional`); this artifact is "
            f"causal: score it without --bidirectional"
        )


def backward_inputs(values: np.ndarray, times: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Backward-stack inputs [T, I] in original time order: row ``s`` normalised with the stats of events ``s..T-1``.

    Same rules as the forward inputs (clip, optional ``log1p(dt/dt_scale)`` with dt the gap to the *next*
    event), computed by running the forward normaliser over the reversed stream.
    """
    values = np.asarray(values, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    reversed_seq = normalise_sequence(values[::-1].copy(), -times[::-1].copy(), config)
    return np.ascontiguousarray(reversed_seq.inputs[::-1])


def event_surprise(mu: np.ndarray, sigma: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-event Gaussian NLL [T] from per-row forecasts [T, F] (row t forecasts event t+1); event 0 is NaN.

    This is the same surprise as the causal contract (mean over features of 0.5 z^2 + log sigma + 0.5 log 2pi).
    """
    z = (targets.astype(np.float64) - mu) / sigma
    per_row = (0.5 * z * z + np.log(sigma) + _HALF_LOG_2PI).mean(axis=-1)
    surprise = np.full(targets.shape[0], np.nan)
    surprise[1:] = per_row[:-1]
    return surprise
