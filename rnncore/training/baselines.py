"""Forecast metrics and the two baselines the trained model must beat: persistence and EWMA.

All forecasters are scored the same way on the same steps (the time-based validation split):

* ``nll``: Gaussian NLL in the model's normalised units against the clipped normalised next value, i.e. the
  training loss (it differs from NLL in original units by ``log std`` per event, identical for every
  forecaster, so the ranking is the same);
* ``mae``: mean absolute error of the forecast mean in original units.

A baseline's scale is the causal RMS of its own past one-step errors (an EWMA of squared errors,
bias-corrected), so its NLL is calibrated rather than a strawman.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from rnncore.kernels.preprocess import NormalisedSequence

EWMA_ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
SCALE_ALPHA = 0.05
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass
class ForecastScore:
    """Running sums of NLL and absolute error over scored steps; ``nll`` and ``mae`` are the means."""

    nll_sum: float = 0.0
    abs_error_sum: float = 0.0
    steps: int = 0

    def add(self, other: ForecastScore) -> None:
        """Accumulate another stream's sums."""
        self.nll_sum += other.nll_sum
        self.abs_error_sum += other.abs_error_sum
        self.steps += other.steps

    @property
    def nll(self) -> float:
        """Mean NLL per scored step (NaN when nothing was scored)."""
        return self.nll_sum / self.steps if self.steps else math.nan

    @property
    def mae(self) -> float:
        """Mean absolute error per scored step and feature, original units."""
        return self.abs_error_sum / self.steps if self.steps else math.nan


def _ewma(x: np.ndarray, alpha: float, initial: np.ndarray) -> np.ndarray:
    """y_t = y_{t-1} + alpha * (x_t - y_{t-1}) along axis 0, starting from ``initial`` (y_{-1})."""
    zi = ((1.0 - alpha) * initial)[None, :]
    y, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], x, axis=0, zi=zi)
    return np.asarray(y)


def error_scale(errors: np.ndarray) -> np.ndarray:
    """Causal RMS after each step of errors [T, F] (NaN = no error yet): bias-corrected EWMA of squares."""
    seen = ~np.isnan(errors)
    squares = np.where(seen, errors, 0.0) ** 2
    count = np.cumsum(seen, axis=0)
    weighted = _ewma(squares, SCALE_ALPHA, np.zeros(errors.shape[1]))
    # Correct the zero start like Adam does: divide by the weight that real errors have received.
    decay = (1.0 - SCALE_ALPHA) ** count
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.where(count > 0, weighted / (1.0 - decay), np.nan))


def score_forecasts(
    seq: NormalisedSequence, mu: np.ndarray, sigma: np.ndarray, steps: slice, min_scale: float
) -> ForecastScore:
    """Score normalised forecasts (mu, sigma) [T, F] made after each event, on ``steps`` (all < T - 1)."""
    s = steps
    sigma = np.maximum(sigma[s], min_scale)
    z = (seq.targets[s] - mu[s]) / sigma
    nll = (0.5 * z * z + np.log(sigma) + _HALF_LOG_2PI).mean(axis=1)
    mean_original = seq.mean[s] + mu[s] * seq.std[s]
    next_index = np.arange(len(seq))[s] + 1
    abs_error = np.abs(seq.values[next_index] - mean_original).mean(axis=1)
    return ForecastScore(float(nll.sum()), float(abs_error.sum()), int(nll.shape[0]))


def _to_normalised(seq: NormalisedSequence, mean: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = (mean - seq.mean) / seq.std
    sigma = np.where(np.isnan(scale), 1.0, scale / seq.std)
    return mu, sigma


def persistence_forecast(seq: NormalisedSequence) -> tuple[np.ndarray, np.ndarray]:
    """Next value = this value; scale = RMS of past one-step changes. Returns normalised (mu, sigma)."""
    v = seq.values
    errors = np.full_like(v, np.nan)
    errors[1:] = v[1:] - v[:-1]
    return _to_normalised(seq, v, error_scale(errors))


def ewma_forecast(seq: NormalisedSequence, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Next value = exponentially weighted mean of past values (rate ``alpha``); scale from its past errors."""
    v = seq.values
    level = _ewma(v, alpha, v[0])
    errors = np.full_like(v, np.nan)
    errors[1:] = v[1:] - level[:-1]
    return _to_normalised(seq, level, error_scale(errors))


def choose_ewma_alpha(sequences: Sequence[NormalisedSequence], train_steps: Sequence[int], min_scale: float) -> float:
    """The EWMA rate from ``EWMA_ALPHAS`` with the lowest MAE on the training steps (a tuned baseline)."""
    best_alpha, best_mae = EWMA_ALPHAS[0], math.inf
    for alpha in EWMA_ALPHAS:
        total = ForecastScore()
        for seq, n in zip(sequences, train_steps, strict=True):
            if n > 0:
                mu, sigma = ewma_forecast(seq, alpha)
                total.add(score_forecasts(seq, mu, sigma, slice(0, n), min_scale))
        if total.mae < best_mae:
            best_alpha, best_mae = alpha, total.mae
    return best_alpha
