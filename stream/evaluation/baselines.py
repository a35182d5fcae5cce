"""Reference detectors NAB publishes numbers for, run beside rnnwatch on the same corpus and scorer.

* windowed Gaussian (NAB ``windowedGaussian``, standard 39.6): score = 1 - Q(|x - mean| / std) with mean and
  std of a trailing window of up to 6400 values that grows one value at a time, then slides 100 at a time;
* persistence-forecast error: the same windowed Gaussian applied to ``|x_t - x_{t-1}|``.
Both are causal: a point's score uses only earlier values.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfc

WINDOW_SIZE = 6400
STEP_SIZE = 100


def window_bounds(n: int, window_size: int = WINDOW_SIZE, step_size: int = STEP_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi)`` of the values the windowed-Gaussian detector holds just before scoring each point."""
    i = np.arange(n)
    full = i >= window_size
    steps = np.where(full, (i - window_size) // step_size, 0)
    lo = np.where(full, steps * step_size, 0)
    hi = np.where(full, steps * step_size + window_size, i)
    return lo, hi


def windowed_gaussian(values: np.ndarray, window_size: int = WINDOW_SIZE, step_size: int = STEP_SIZE) -> np.ndarray:
    """NAB's windowed-Gaussian anomaly score per point (0 for the first point; std 0 is replaced by 1e-6)."""
    x = np.asarray(values, dtype=np.float64)
    lo, hi = window_bounds(x.size, window_size, step_size)
    shift = x[0] if x.size else 0.0  # centre before summing squares to keep the variance accurate
    c = x - shift
    s1 = np.concatenate([[0.0], np.cumsum(c)])
    s2 = np.concatenate([[0.0], np.cumsum(c * c)])
    count = np.maximum(hi - lo, 1)
    mean = (s1[hi] - s1[lo]) / count
    var = np.maximum((s2[hi] - s2[lo]) / count - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std == 0.0] = 1e-6
    z = np.abs(c - mean) / std
    scores = 1.0 - 0.5 * erfc(z / math.sqrt(2.0))
    scores[hi == lo] = 0.0
    return scores


def persistence_error(values: np.ndarray, window_size: int = WINDOW_SIZE, step_size: int = STEP_SIZE) -> np.ndarray:
    """Windowed-Gaussian score of the absolute error of the forecast 'next value = last value'."""
    x = np.asarray(values, dtype=np.float64)
    error = np.abs(np.diff(x, prepend=x[:1]))
    return windowed_gaussian(error, window_size, step_size)


BASELINES = {"windowedGaussian": windowed_gaussian, "persistenceError": persistence_error}
"""Baseline detectors by the names used in the results table and NAB's results layout."""
