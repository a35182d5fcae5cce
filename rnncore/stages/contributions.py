"""Hotelling T² pieces shared by every reference: the ridged fit, the distance, and which features drive it.

Used by the envelope's trained and self-fitted references (:mod:`rnncore.stages.envelope`,
:mod:`rnncore.stages.selffit`) and by the cross-sensor reference (:mod:`rnncore.stages.crossfit`); the per-event
parts work without temporaries, so they run inside their Numba loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["centred_dot", "contributions", "contributions_centred", "ridged_mean_icov", "t2_centred"]


def ridged_mean_icov(fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse covariance, with a ridge of 1e-3 of the mean variance (flat or collinear features)."""
    cov = np.atleast_2d(np.cov(fit, rowvar=False))
    cov = cov + np.eye(cov.shape[0]) * (1e-3 * np.trace(cov) / cov.shape[0] + 1e-9)
    return fit.mean(axis=0), np.linalg.inv(cov)


@njit(cache=True, nogil=True)
def contributions(d: np.ndarray, icov: np.ndarray, out: np.ndarray) -> None:
    """Each of the F features' share of the T² ``d' M d`` (``M = S^-1``; ``d`` of F raw or 2F window values).

    Reconstruction-based contributions (Alcala & Qin, Automatica 2009): feature j's contribution is how much the
    distance falls when feature j alone is moved to its best value given the others, ``g_j^2 / M_jj`` with
    ``g = M d`` (for a window term, j's two values, mean and log variance, are moved together:
    ``u' A^-1 u`` with ``u`` and ``A`` the j-parts of ``g`` and ``M``). Chosen over the plain decomposition
    ``d_k (M d)_k`` (which sums to T² but smears a one-sensor fault onto the sensors correlated with it: on a
    rig of sensors driven by shared factors it blamed the wrong one) because a large fault on one feature
    provably gives that feature the largest reconstruction-based contribution. Normalised to sum to 1
    (uniform for ``d = 0``)."""
    contributions_centred(d, np.zeros(d.shape[0]), icov, out)


@njit(cache=True, nogil=True)
def centred_dot(row: np.ndarray, x: np.ndarray, mu: np.ndarray) -> float:
    """``row . (x - mu)`` without a temporary array (this runs per event)."""
    acc = 0.0
    for k in range(x.shape[0]):
        acc += row[k] * (x[k] - mu[k])
    return acc


@njit(cache=True, nogil=True)
def t2_centred(x: np.ndarray, mu: np.ndarray, icov: np.ndarray) -> float:
    """``(x - mu)' icov (x - mu)`` without a temporary array."""
    total = 0.0
    for i in range(x.shape[0]):
        total += (x[i] - mu[i]) * centred_dot(icov[i], x, mu)
    return total


@njit(cache=True, nogil=True)
def contributions_centred(x: np.ndarray, mu: np.ndarray, icov: np.ndarray, out: np.ndarray) -> None:
    """:func:`contributions` of ``d = x - mu``, without temporaries."""
    F = out.shape[0]
    total = 0.0
    for j in range(F):
        u = centred_dot(icov[j], x, mu)  # g_j, g = icov d
        if x.shape[0] == F:
            value = u * u / icov[j, j] if icov[j, j] > 0.0 else 0.0
        else:
            v = centred_dot(icov[F + j], x, mu)
            a, b, c = icov[j, j], icov[j, F + j], icov[F + j, F + j]
            det = a * c - b * b
            if det > 0.0:
                value = (c * u * u - 2.0 * b * u * v + a * v * v) / det
            elif c > 0.0 and a == 0.0:  # a reference that weighs only the log variance (envelope._spread_only)
                value = v * v / c
            else:
                value = 0.0
        out[j] = max(value, 0.0)
        total += out[j]
    for j in range(F):
        out[j] = out[j] / total if total > 0.0 else 1.0 / F
