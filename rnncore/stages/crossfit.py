"""Cross-sensor reference: each feature of a multi-feature stream estimated from the *other* features, frozen.

The envelope's T² (:mod:`rnncore.stages.envelope`) asks "is this state far from the normal states?". A fault that
keeps every sensor inside its normal range but breaks how they move together (a worn bearing running hotter than
its load explains, a cooling failure, cavitation at a pressure the flow does not call for) is near the normal
states and far from the normal *relations*. For each stream with F >= 2 features seen in training, this fits, on
its normal rows, a ridge regression of every feature j on the other features' current values and their EW means
over ``lag_window`` events (so thermal lags and other slow couplings are in the estimate), standardised with the
fit rows' mean and spread. Per event the residual vector ``r_j = z_j - z_{-j} . beta_j`` is smoothed by an EW mean
over ``smooth_window`` events (a relation broken for a while, not one noisy reading) and scored by its T² against
its distribution on the fit rows, cut at the ``1 - false_alarm`` quantile of the held-out rows, like the envelope's
terms. The per-feature contributions of that T² name the feature whose relation broke.

Chosen on the rig and fleet TUNE seeds (bench side, ``BENCHMARKS.md`` "Cross-sensor reference"): lag window 30,
smoothing 8, ridge 0.1 (longer lags, e.g. 300 or 3000 events, and weaker ridges learnt slow states of the
training rows and raised the false alarms on the fleet's machines). Online state: :data:`CROSS_COLUMN`, 2F + 1
float64 per stream (the lagged EW means, the smoothed residuals, the events it has seen); the references live in
the artifact's envelope file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from rnncore.errors import EnvelopeError
from rnncore.stages.contributions import contributions_centred, ridged_mean_icov, t2_centred

__all__ = ["CROSS_COLUMN", "CrossFit", "CrossParams", "cross_ratios", "cross_schema", "fit_cross_stream"]

CROSS_COLUMN = "envelope_cross"  # float64 [2F + 1]: EW means over lag_window (F), smoothed residuals (F), count


@dataclass(frozen=True, kw_only=True)
class CrossParams:
    """Lag and smoothing windows (events) and the ridge of the regressions (in units of the fit rows' count)."""

    lag_window: int = 30
    smooth_window: int = 8
    ridge: float = 0.1

    def __post_init__(self) -> None:
        if self.lag_window < 1 or self.smooth_window < 1:
            raise EnvelopeError(
                f"lag_window and smooth_window must be >= 1, got {self.lag_window}, {self.smooth_window}"
            )
        if not 0.0 < self.ridge < 1e6:
            raise EnvelopeError(f"ridge must be in (0, 1e6), got {self.ridge}")


@dataclass(frozen=True)
class CrossFit:
    """Stacked per-stream cross-sensor references, row ``k`` = the envelope's reference row ``k``.

    ``cut[k] == 0`` marks a stream without one (a single-feature stream, or too few rows)."""

    params: CrossParams
    dmu: np.ndarray  # [K, 2F] mean of the design [x, EW(x)] on the fit rows
    dsd: np.ndarray  # [K, 2F] its spread (standard deviation, floored)
    beta: np.ndarray  # [K, F, 2F] coefficients of feature j's estimate; 0 on j's own two columns
    rmu: np.ndarray  # [K, F] mean of the smoothed residuals on the fit rows
    ricov: np.ndarray  # [K, F, F] their inverse (ridged) covariance
    cut: np.ndarray  # [K] the held-out 1 - false_alarm quantile of their T², 0 = none

    def __post_init__(self) -> None:
        K, W = self.dmu.shape[0], self.dmu.shape[1] if self.dmu.ndim == 2 else -1
        F = W // 2
        shapes = {"dmu": (K, 2 * F), "dsd": (K, 2 * F), "beta": (K, F, 2 * F), "rmu": (K, F), "ricov": (K, F, F),
                  "cut": (K,)}  # fmt: skip
        for name, shape in shapes.items():
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != np.float64:
                got = getattr(array, "shape", None)
                raise EnvelopeError(f"cross-sensor {name} must be float64 {shape}, got {got}")
            if not np.all(np.isfinite(array)):
                raise EnvelopeError(f"cross-sensor {name} holds a non-finite value: retrain with rnnwatch train")
        if np.any(self.cut < 0) or np.any(self.dsd <= 0):
            raise EnvelopeError("cross-sensor cuts must be >= 0 and spreads > 0: retrain with rnnwatch train")

    @property
    def streams(self) -> int:
        """How many streams have a cross-sensor reference."""
        return int(np.count_nonzero(self.cut > 0))


def cross_schema(n_features: int) -> dict[str, tuple[tuple[int, ...], np.dtype[np.float64]]]:
    """The per-stream column of the online cross-sensor step (none for a single-feature model)."""
    return {CROSS_COLUMN: ((2 * n_features + 1,), np.dtype(np.float64))} if n_features >= 2 else {}


@njit(cache=True, nogil=True)
def _cross_residual(state: np.ndarray, count: float, x: np.ndarray, dmu: np.ndarray, dsd: np.ndarray,
                    beta: np.ndarray, lag_window: int, smooth_window: int, z: np.ndarray) -> None:  # fmt: skip
    """Advance one stream's EW means and smoothed residuals by one event (``count``: events before this one).

    ``state`` starts with 2F values: EW means of x over ``lag_window`` (F), then the smoothed residuals (F). With
    ``beta`` all zero (fitting's first pass) the residual part is meaningless; fitting reads only the EW means.
    ``z`` is 2F of scratch (the standardised design, computed once per event)."""
    F = x.shape[0]
    a = max(1.0 / (count + 1.0), 1.0 / lag_window)
    s = max(1.0 / (count + 1.0), 1.0 / smooth_window)
    for j in range(F):
        state[j] += a * (x[j] - state[j])
    for c in range(F):
        z[c] = (x[c] - dmu[c]) / dsd[c]
        z[F + c] = (state[c] - dmu[F + c]) / dsd[F + c]
    for j in range(F):
        est = 0.0
        for c in range(2 * F):
            est += beta[j, c] * z[c]
        state[F + j] += s * (z[j] - est - state[F + j])


@njit(cache=True, nogil=True)
def _trace(values: np.ndarray, dmu: np.ndarray, dsd: np.ndarray, beta: np.ndarray, lag_window: int,
           smooth_window: int) -> np.ndarray:  # fmt: skip
    """The online state after each row of one stream, from a fresh state (the per-event update, row by row)."""
    T, F = values.shape
    state, z = np.zeros(2 * F), np.empty(2 * F)
    out = np.empty((T, 2 * F))
    for t in range(T):
        _cross_residual(state, float(t), values[t], dmu, dsd, beta, lag_window, smooth_window, z)
        out[t] = state
    return out


def fit_cross_stream(values: np.ndarray, fit: slice, held: slice, q: float,
                     params: CrossParams) -> tuple[np.ndarray, ...]:  # fmt: skip
    """One stream's reference from its normal rows ``values`` [T, F] (time order): ``(dmu, dsd, beta, rmu, ricov,
    cut)``; rows ``fit`` give the regressions and the residuals' distribution, rows ``held`` the cut."""
    T, F = values.shape
    W = 2 * F
    zero_mu, one_sd, no_beta = np.zeros(W), np.ones(W), np.zeros((F, W))
    if F < 2:
        return zero_mu, one_sd, no_beta, np.zeros(F), np.zeros((F, F)), np.zeros(1)
    lagged = _trace(values, zero_mu, one_sd, no_beta, params.lag_window, params.smooth_window)[:, :F]
    design = np.concatenate([values, lagged], axis=1)[fit]
    dmu = design.mean(axis=0)
    spread = design.std(axis=0)
    dsd = np.maximum(spread, 1e-6 * np.maximum(np.abs(dmu), 1.0))
    z = (design - dmu) / dsd
    n = z.shape[0]
    beta = np.zeros((F, W))
    for j in range(F):
        cols = [c for c in range(W) if c not in (j, F + j)]
        a = z[:, cols]
        gram = a.T @ a + params.ridge * n * np.eye(len(cols))
        beta[j, cols] = np.linalg.solve(gram, a.T @ z[:, j])
    residuals = _trace(values, dmu, dsd, beta, params.lag_window, params.smooth_window)[:, F:]
    rmu, ricov = ridged_mean_icov(residuals[fit])
    held_t2 = np.einsum("ij,jk,ik->i", residuals[held] - rmu, ricov, residuals[held] - rmu)
    cut = float(np.quantile(held_t2, q)) + 1e-12
    return dmu, dsd, beta, rmu, ricov, np.array([cut])


@njit(cache=True, nogil=True)
def cross_step(state: np.ndarray, rows: np.ndarray, refs: np.ndarray, ok: np.ndarray, x: np.ndarray, warmup: int,
               dmu: np.ndarray, dsd: np.ndarray, beta: np.ndarray, rmu: np.ndarray,
               ricov: np.ndarray, cut: np.ndarray, lag_window: int, smooth_window: int, ratio: np.ndarray,
               contrib: np.ndarray, want: bool) -> None:  # fmt: skip
    """Per event in arrival order: advance the stream's cross-sensor state and lift ``ratio[i]`` to the residual
    T² / cut where the stream has a reference (``refs[i] >= 0`` with a cut) and the step has seen more than
    ``warmup`` of its events (the count is the state's last value); with ``want``, where the cross term is the
    larger one and the envelope's terms alone stay below the cut, its per-feature contributions replace
    ``contrib[i]`` (where the envelope flags too, its raw or window contributions named the faulty sensor of the
    fleet's machines more often: 96 % of flagged one-sensor fault rows against 88 % from the residuals)."""
    F = x.shape[1]
    z = np.empty(2 * F)
    for i in range(rows.shape[0]):
        if not ok[i]:
            continue
        k = refs[i]
        if k < 0 or cut[k] <= 0.0:
            continue
        row = rows[i]
        seen = state[row, 2 * F]
        _cross_residual(state[row], seen, x[i], dmu[k], dsd[k], beta[k], lag_window, smooth_window, z)
        state[row, 2 * F] = seen + 1.0
        if seen + 1.0 <= warmup:
            continue
        resid = state[row, F : 2 * F]
        r = t2_centred(resid, rmu[k], ricov[k]) / cut[k]
        if r > ratio[i]:
            if want and ratio[i] < 1.0:  # the envelope's own terms name the sensor better where they flag
                contributions_centred(resid, rmu[k], ricov[k], contrib[i])
            ratio[i] = r


def cross_ratios(cross: CrossFit, values: np.ndarray, k: int, warmup: int) -> np.ndarray:
    """Offline, for tests and probes: the cross-sensor ratio of every row of one stream against reference ``k``
    from a fresh state (0 within the warm-up), through the online per-event update."""
    p = cross.params
    trace = _trace(np.ascontiguousarray(values, dtype=np.float64), cross.dmu[k], cross.dsd[k], cross.beta[k],
                   p.lag_window, p.smooth_window)  # fmt: skip
    F = values.shape[1]
    d = trace[:, F:] - cross.rmu[k]
    out = np.einsum("ij,jk,ik->i", d, cross.ricov[k], d) / cross.cut[k] if cross.cut[k] > 0 else np.zeros(len(d))
    out[:warmup] = 0.0
    return np.asarray(out)
