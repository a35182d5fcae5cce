"""Forecast surprise -> calibrated anomaly score in [0, 1], per stream, online (HTM-style anomaly likelihood).

Each stream keeps seven float32 numbers (column ``score_stats``):
``[n, short, mean_s, var_s, mean_a, var_a, recent]``.
For every accepted event with a finite surprise ``s`` (the forecast's Gaussian NLL):

1. ``s`` is clipped to ``[-max_surprise, max_surprise]`` (one absurd event must not wreck the statistics);
2. short-term average: ``a = short += (s - short) / min(n + 1, short_window)``  (running mean, then EWMA);
3. two tail probabilities under the stream's long-run distributions, each Gaussian ``N(mean, var + min_var)``:
   of the event's own surprise ``s`` (point anomalies) and of the short average ``a`` (HTM's likelihood,
   sustained changes): ``tail = 0.5 * erfc(z / sqrt(2))``;
4. score = ``log(tail + tail_floor) / log(tail_floor)`` of the smaller tail, clipped to [0, 1] (Numenta's
   log-likelihood; with the default floor 1e-10: tail 1e-10 -> 1, tail 0.5 -> 0.03);
   0 while the stream has seen fewer than ``warmup_events`` surprises (``prior_warmup_events`` with a prior,
   see below); beside it the event's *rarity*
   ``-log10(1 - score)`` computed from the log of the tail (:func:`log_upper_tail`) in float64, so it keeps
   growing where the float32 score has reached 1 (tail below ~1e-16): ``score >= t`` exactly when
   ``rarity >= -log10(1 - t)`` (0.99: 2), and alarms above the threshold keep their order;
5. long-run statistics, for x in (s, a): ``alpha = 1 / min(n + 1, long_window)``;
   ``d = x - mean`` winsorised to ``+-outlier_sigmas * sqrt(var + min_var)`` once warm, so anomalies barely
   widen the distribution they are judged against; ``mean += alpha*d``; ``var = (1 - alpha)*(var + alpha*d^2)``;
   then ``n = min(n + 1, long_window)``;
6. optional refractory suppression (``refractory_events = K > 0``): the score is reported only when it exceeds
   ``recent``, a running maximum of earlier scores that decays by ``1 - 1/K`` per event, else 0; so a long
   anomaly raises one alert at its onset instead of a train of them (NAB charges every repeated flag).

With a :class:`~rnncore.calibration_prior.CalibrationPrior` (the artifact's, stored by `rnnwatch train`), a fresh
row (``n = 0``) starts at it before its first surprise: ``n = prior_events`` (a pseudo-count), ``short`` and the two
(mean, variance) pairs at the prior's; the stream then scores once it has seen ``prior_warmup_events`` surprises of
its own (``n >= prior_events + prior_warmup_events``) and step 5 winsorises from ``n >= prior_events`` on, so early
surprises (the running normalisation settling) move the prior only by a bounded amount. Without one: as above.

Events with status != 0 or a NaN surprise (the stream's first event) get score 0 and leave the row untouched.
Ahmad et al. (2017) report HTM rising from 53.6 to 70.1 on NAB with this kind of likelihood post-processing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnncore.calibration_prior import PRIOR_EVENTS, PRIOR_WARMUP_EVENTS, WARMUP_EVENTS, CalibrationPrior
from rnncore.errors import ScoringError
from rnncore.kernels._numba import jit

__all__ = [
    "STATS_COLUMN",
    "CalibrationPrior",
    "ScoringParams",
    "calibrate",
    "score_schema",
]

STATS_COLUMN = "score_stats"
"""Per-stream calibration column: float32 [capacity, 7]: n, short average, two (mean, variance) pairs, recent max."""

_N, _SHORT, _MEAN_S, _VAR_S, _MEAN_A, _VAR_A, _RECENT = 0, 1, 2, 3, 4, 5, 6
_WIDTH = 7


@dataclass(frozen=True, kw_only=True)
class ScoringParams:
    """Hyperparameters of the per-stream likelihood calibration; all counts are in events of that stream."""

    short_window: int = 10
    long_window: int = 2000
    warmup_events: int = WARMUP_EVENTS  # without a prior
    prior_warmup_events: int = PRIOR_WARMUP_EVENTS  # with the model's prior: a stream's own surprises before it scores
    prior_events: int = PRIOR_EVENTS  # the prior's pseudo-count in a new stream's long-run statistics
    min_var: float = 1e-4
    max_surprise: float = 50.0
    outlier_sigmas: float = 4.0
    tail_floor: float = 1e-10  # tail probability that maps to score 1; smaller spreads out the extremes
    refractory_events: int = 0  # 0: off; else report only scores above the running max decaying over K events

    def __post_init__(self) -> None:
        if self.short_window < 1:
            raise ScoringError(f"short_window must be >= 1, got {self.short_window}")
        if self.long_window < self.short_window:
            raise ScoringError(f"long_window ({self.long_window}) must be >= short_window ({self.short_window})")
        if self.long_window > 1 << 24:
            raise ScoringError(f"long_window must be <= 2**24 (float32 counter), got {self.long_window}")
        if not 0 <= self.warmup_events <= self.long_window:
            raise ScoringError(
                f"warmup_events must be in [0, long_window={self.long_window}] (the counter stops there), "
                f"got {self.warmup_events}"
            )
        if self.prior_events < 1 or self.prior_warmup_events < 0:
            raise ScoringError(
                f"prior_events must be >= 1 and prior_warmup_events >= 0, got {self.prior_events}, "
                f"{self.prior_warmup_events}"
            )
        if not self.min_var > 0:
            raise ScoringError(f"min_var must be > 0, got {self.min_var}")
        if not self.max_surprise > 0:
            raise ScoringError(f"max_surprise must be > 0, got {self.max_surprise}")
        if self.refractory_events < 0:
            raise ScoringError(f"refractory_events must be >= 0 (0 turns it off), got {self.refractory_events}")
        if not 0 < self.tail_floor < 0.5:
            raise ScoringError(f"tail_floor must be in (0, 0.5), got {self.tail_floor}")
        if not self.outlier_sigmas > 0:
            raise ScoringError(f"outlier_sigmas must be > 0, got {self.outlier_sigmas}")


def score_schema(params: ScoringParams) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Per-stream columns the calibration needs, as ``{name: (shape after the row axis, dtype)}``; zeros = fresh."""
    del params  # the layout does not depend on the hyperparameters
    return {STATS_COLUMN: ((_WIDTH,), np.dtype(np.float32))}


def _tail_score(x: float, mean: float, var: float, min_var: float, tail_floor: float) -> float:
    """Numenta's log-likelihood of the upper Gaussian tail beyond ``x``, in [0, 1]."""
    z = (x - mean) / math.sqrt(var + min_var)
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    score = math.log(tail + tail_floor) / math.log(tail_floor)
    return min(max(score, 0.0), 1.0)


def log_upper_tail(z: float) -> float:
    """``log(0.5 * erfc(z / sqrt(2)))``, the log of the standard normal's upper tail, finite for every finite z
    (``erfc`` underflows to 0 beyond z ~ 38; from z = 30 on the asymptotic series, relative error below 1e-12)."""
    if z < 30.0:
        return math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    inv = 1.0 / (z * z)
    series = 1.0 - inv + 3.0 * inv * inv - 15.0 * inv * inv * inv
    return -0.5 * z * z - math.log(z) - 0.5 * math.log(2.0 * math.pi) + math.log(series)


def _tail_rarity(x: float, mean: float, var: float, min_var: float, tail_floor: float) -> float:
    """``-log10(1 - score)`` of :func:`_tail_score`, unbounded: with ``u = log(tail / floor)``,
    ``1 - score = log1p(e^u) / -log(floor)`` exactly."""
    z = (x - mean) / math.sqrt(var + min_var)
    u = log_upper_tail(z) - math.log(tail_floor)
    if u > 30.0:
        log_softplus = math.log(u + math.log1p(math.exp(-u)))
    elif u < -30.0:
        log_softplus = u  # log1p(e^u) = e^u to double precision
    else:
        log_softplus = math.log(math.log1p(math.exp(u)))
    return max((math.log(-math.log(tail_floor)) - log_softplus) / math.log(10.0), 0.0)


def _winsorised(d: float, var: float, min_var: float, limit_sigmas: float) -> float:
    bound = limit_sigmas * math.sqrt(var + min_var)
    return min(max(d, -bound), bound)


_tail_score_jit = jit(_tail_score)
log_upper_tail = jit(log_upper_tail)
_tail_rarity_jit = jit(_tail_rarity)
_winsorised_jit = jit(_winsorised)


@jit
def _calibrate(
    stats: np.ndarray,
    rows: np.ndarray,
    nll: np.ndarray,
    status: np.ndarray,
    out_scores: np.ndarray,
    short_window: int,
    long_window: int,
    warmup_events: int,
    min_var: float,
    max_surprise: float,
    outlier_sigmas: float,
    tail_floor: float,
    refractory_events: int,
    out_rarity: np.ndarray,
    prior: np.ndarray,
    prior_events: int,
) -> None:
    """``prior_events`` 0: no prior (``warmup_events`` applies); else ``warmup_events`` is the prior's warm-up and
    ``prior`` holds ``(mean_s, var_s, mean_a, var_a)``."""
    warm_at = warmup_events + prior_events
    for i in range(rows.shape[0]):
        s = float(nll[i])
        out_rarity[i] = 0.0
        if status[i] != 0 or not np.isfinite(s):  # NaN: no forecast yet; +-inf: no usable surprise
            out_scores[i] = 0.0
            continue
        s = min(max(s, -max_surprise), max_surprise)
        r = rows[i]
        if prior_events > 0 and stats[r, _N] == 0.0:  # a fresh row starts at the prior
            stats[r, _N] = prior_events
            stats[r, _SHORT] = prior[2]
            stats[r, _MEAN_S], stats[r, _VAR_S] = prior[0], prior[1]
            stats[r, _MEAN_A], stats[r, _VAR_A] = prior[2], prior[3]
        n = float(stats[r, _N])
        a = stats[r, _SHORT] + (s - stats[r, _SHORT]) / min(n + 1.0, short_window)
        mean_s, var_s = float(stats[r, _MEAN_S]), float(stats[r, _VAR_S])
        mean_a, var_a = float(stats[r, _MEAN_A]), float(stats[r, _VAR_A])
        warm = n >= warm_at
        if warm:
            point = _tail_score_jit(s, mean_s, var_s, min_var, tail_floor)
            sustained = _tail_score_jit(a, mean_a, var_a, min_var, tail_floor)
            raw = max(point, sustained)
            rarity = max(_tail_rarity_jit(s, mean_s, var_s, min_var, tail_floor),
                         _tail_rarity_jit(a, mean_a, var_a, min_var, tail_floor))  # fmt: skip
            if refractory_events > 0:
                recent = float(stats[r, _RECENT])
                kept = raw > recent
                out_scores[i] = raw if kept else 0.0
                out_rarity[i] = rarity if kept else 0.0
                stats[r, _RECENT] = max(recent * (1.0 - 1.0 / refractory_events), raw)
            else:
                out_scores[i] = raw
                out_rarity[i] = rarity
        else:
            out_scores[i] = 0.0
        limit = outlier_sigmas if warm or (prior_events > 0 and n >= prior_events) else np.inf
        alpha = 1.0 / min(n + 1.0, long_window)
        d = _winsorised_jit(s - mean_s, var_s, min_var, limit)
        stats[r, _MEAN_S] = mean_s + alpha * d
        stats[r, _VAR_S] = (1.0 - alpha) * (var_s + alpha * d * d)
        d = _winsorised_jit(a - mean_a, var_a, min_var, limit)
        stats[r, _MEAN_A] = mean_a + alpha * d
        stats[r, _VAR_A] = (1.0 - alpha) * (var_a + alpha * d * d)
        stats[r, _SHORT] = a
        stats[r, _N] = min(n + 1.0, long_window)


def _check_batch(
    columns: Mapping[str, np.ndarray], rows: np.ndarray, nll: np.ndarray, status: np.ndarray, out_scores: np.ndarray
) -> np.ndarray:
    stats = columns.get(STATS_COLUMN)
    if stats is None:
        raise ScoringError(f"state columns lack {STATS_COLUMN!r}: allocate them from score_schema()")
    if stats.dtype != np.float32 or stats.ndim != 2 or stats.shape[1] != _WIDTH or not stats.flags.c_contiguous:
        raise ScoringError(
            f"{STATS_COLUMN} must be C-contiguous float32 [capacity, {_WIDTH}], got {stats.dtype} {stats.shape}"
        )
    B = rows.shape[0] if rows.ndim == 1 else -1
    for name, array, dtype in (
        ("rows", rows, np.int64),
        ("nll", nll, np.float32),
        ("status", status, np.int8),
        ("out_scores", out_scores, np.float32),
    ):
        if array.dtype != dtype or array.shape != (B,):
            raise ScoringError(f"{name} must be {np.dtype(dtype)} [{B}], got {array.dtype} {array.shape}")
    ok_rows = rows[status == 0]
    if ok_rows.size and (ok_rows.min() < 0 or ok_rows.max() >= stats.shape[0]):
        raise ScoringError(
            f"rows of accepted events must lie in [0, {stats.shape[0]}), got {ok_rows.min()}..{ok_rows.max()}"
        )
    return stats


def calibrate(
    params: ScoringParams,
    columns: Mapping[str, np.ndarray],
    rows: np.ndarray,
    nll: np.ndarray,
    status: np.ndarray,
    out_scores: np.ndarray,
    out_rarity: np.ndarray | None = None,
    prior: CalibrationPrior | None = None,
) -> None:
    """Score a batch in arrival order into ``out_scores`` (and each score's unbounded rarity into ``out_rarity``,
    float64 [B], when given) and advance each stream's calibration state in place; a fresh stream starts at
    ``prior`` when given (see the module docstring)."""
    stats = _check_batch(columns, rows, nll, status, out_scores)
    if out_rarity is None:
        out_rarity = np.empty(rows.shape[0])
    elif out_rarity.dtype != np.float64 or out_rarity.shape != rows.shape:
        raise ScoringError(f"out_rarity must be float64 {rows.shape}, got {out_rarity.dtype} {out_rarity.shape}")
    if prior is None:
        moments, warmup, pseudo = _NO_PRIOR, params.warmup_events, 0
    else:
        moments, warmup, pseudo = np.array(prior.moments()), params.prior_warmup_events, params.prior_events
        if pseudo + warmup > params.long_window:
            raise ScoringError(
                f"prior_events + prior_warmup_events ({pseudo} + {warmup}) must be <= long_window="
                f"{params.long_window} to score with a prior (the counter stops there)"
            )
    _calibrate(
        stats, rows, nll, status, out_scores, params.short_window, params.long_window,
        warmup, params.min_var, params.max_surprise, params.outlier_sigmas, params.tail_floor,
        params.refractory_events, out_rarity, moments, pseudo,
    )  # fmt: skip


_NO_PRIOR = np.zeros(4)
