"""Baselines scored in the same run as the product: a per-stream rolling z-score and Hotelling T² of raw values.

Both are deliberately simple references: the z-score follows the stream (and so absorbs what persists); T²
holds the training period's mean and covariance fixed (and so flags every departure, normal or not).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from stream.evaluation.fleet.generator import FleetUnit

ZSCORE_WINDOW = 100
ZSCORE_THRESHOLD = 4.0  # |z| in sigmas of the last ZSCORE_WINDOW events
T2_QUANTILE = 0.999  # chi-square quantile with F degrees of freedom


def rolling_zscore(unit: FleetUnit, window: int = ZSCORE_WINDOW) -> np.ndarray:
    """max over features of |x - mean| / std of the previous ``window`` events (train tail, then test)."""
    x = np.concatenate([unit.train[-window:], unit.test])
    c1 = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    c2 = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x * x]), axis=0)
    idx = np.arange(window, x.shape[0])
    mean = (c1[idx] - c1[idx - window]) / window
    var = np.maximum((c2[idx] - c2[idx - window]) / window - mean**2, 1e-12)
    z = np.abs(x[window:] - mean) / np.sqrt(var)
    return np.asarray(z.max(axis=1))


def hotelling_t2(unit: FleetUnit) -> np.ndarray:
    """(x - mu)' S^-1 (x - mu) with mu, S of the clean training rows (ridge 1e-6 of the trace for rank safety)."""
    mu = unit.train.mean(axis=0)
    cov = np.atleast_2d(np.cov(unit.train, rowvar=False))
    cov += np.eye(cov.shape[0]) * 1e-6 * np.trace(cov)
    d = unit.test - mu
    return np.asarray(np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d))


def t2_threshold(features: int) -> float:
    """The T² cut a user would pick without labels: the chi-square quantile for ``features`` dimensions."""
    return float(stats.chi2.ppf(T2_QUANTILE, features))
