"""The envelope of a stream without a training reference, fitted online from its own early history, then frozen.

A stream that `rnnwatch train` did not see (a new sensor joining the fleet, or one with too few training rows)
gets the same two frozen T² references as a trained one (:mod:`rnncore.stages.envelope`: raw values, and the EW
``[m, log v]`` window features), fitted from the stream's own events, in three phases counted per stream:

1. warm-up: its first ``EnvelopeParams.warmup`` events (the EW moments settling) are not used;
2. fit: the next ``fit_events`` accepted events give the mean and covariance of both (Welford's update); the
   covariance is then ridged exactly as in training and inverted in place;
3. held-out: the next ``held_events`` events give the cuts. Only the ``top_k`` largest raw and window
   statistics are kept (each with its partner), which is enough to read the ``1 - false_alarm`` quantile of each
   exactly (``numpy.quantile``'s linear rule) and then that of ``max(raw / c_raw, win / c_win)``: an event among
   the top ``k`` of the max is among the top ``k`` of one of the two. Then the reference is frozen for good.

Phases 2 and 3 skip every event the stream is flagged on (the Detector's score at or above ``alarm_score``), so
an onset the forecaster catches does not become part of the stream's normal. Until the reference is frozen the
stream's envelope score is 0 (the Detector's score alone). State: :func:`self_fit_width` float64 per stream in
:data:`SELF_COLUMN` (45 = 360 B at F = 1 with ``top_k`` 8; 381 = 3,048 B at F = 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from rnncore.errors import EnvelopeError
from rnncore.stages.contributions import contributions, contributions_centred, t2_centred
from rnncore.stages.envelope import Envelope, _ew_update
from rnncore.stages.envelope import _t2 as t2

__all__ = ["SELF_COLUMN", "SelfFitParams", "contributions", "envelope_step", "self_fit_schema", "self_fit_width"]

SELF_COLUMN = "envelope_self"  # float64 [self_fit_width(F)]: the online fit, see the module docstring
_N_FIT, _N_HELD, _CUTS = 0, 1, 2  # offsets: events fitted, events held out, (c_raw, c_win, c); 0 = not frozen
_HEAD = 5


@dataclass(frozen=True, kw_only=True)
class SelfFitParams:
    """Lengths of the online fit and held-out phases (events after the warm-up) and the top-k kept for the cut."""

    fit_events: int = 200  # 900 until 2026-12-03; short enough for a short experiment's normal head (BENCHMARKS.md)
    held_events: int = 100  # 400 until 2026-12-03
    top_k: int = 8

    def __post_init__(self) -> None:
        if self.fit_events < 20:
            raise EnvelopeError(f"fit_events must be >= 20 (a covariance needs events), got {self.fit_events}")
        if self.held_events < 1 or self.top_k < 2:
            raise EnvelopeError(f"held_events must be >= 1 and top_k >= 2, got {self.held_events}, {self.top_k}")

    def check_quantile(self, false_alarm: float) -> None:
        """Raise EnvelopeError when ``top_k`` cannot hold what the exact held-out quantile needs."""
        needed = _needed(self.held_events, 1.0 - false_alarm)
        if needed > self.top_k:
            raise EnvelopeError(
                f"the {1 - false_alarm:g} quantile of {self.held_events} held-out events needs the top {needed}; "
                f"top_k is {self.top_k}: raise top_k or shorten held_events"
            )


def _needed(n: int, q: float) -> int:
    """How many of the largest of ``n`` values ``numpy.quantile(x, q)`` (linear) reads."""
    return n - int(np.floor((n - 1) * q))


def self_fit_width(n_features: int, top_k: int) -> int:
    """float64 values of :data:`SELF_COLUMN` per stream: head, raw mean and co-moments, window ones, top pairs."""
    F = n_features
    return _HEAD + F + F * F + 2 * F + 4 * F * F + 4 * top_k


def self_fit_schema(n_features: int, params: SelfFitParams) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The per-stream column of the online fit."""
    return {SELF_COLUMN: ((self_fit_width(n_features, params.top_k),), np.dtype(np.float64))}


@njit(cache=True, nogil=True)
def _welford(n: float, mean: np.ndarray, co: np.ndarray, x: np.ndarray) -> None:
    """Add ``x`` to the mean and the co-moment sum ``co`` (d*d, row-major) of ``n`` earlier values."""
    d = x.shape[0]
    delta = np.empty(d)
    for i in range(d):
        delta[i] = x[i] - mean[i]
        mean[i] += delta[i] / (n + 1.0)
    for i in range(d):
        after = x[i] - mean[i]
        for k in range(d):
            co[i * d + k] += delta[k] * after


@njit(cache=True, nogil=True)
def _freeze_icov(n: float, co: np.ndarray) -> None:
    """Replace the co-moment sum by the inverse of the ridged sample covariance (training's ``_mean_icov``)."""
    d = int(np.sqrt(co.shape[0]) + 0.5)
    a = np.empty((d, d))
    trace = 0.0
    for i in range(d):
        for k in range(d):
            a[i, k] = co[i * d + k] / max(n - 1.0, 1.0)
        trace += a[i, i]
    ridge = 1e-3 * trace / d + 1e-9
    for i in range(d):
        a[i, i] += ridge
    inv = np.eye(d)
    for c in range(d):  # Gauss-Jordan with partial pivoting (the matrix is symmetric positive definite)
        p = c
        for r in range(c + 1, d):
            if abs(a[r, c]) > abs(a[p, c]):
                p = r
        if p != c:
            for k in range(d):
                a[c, k], a[p, k] = a[p, k], a[c, k]
                inv[c, k], inv[p, k] = inv[p, k], inv[c, k]
        pivot = a[c, c]
        for k in range(d):
            a[c, k] /= pivot
            inv[c, k] /= pivot
        for r in range(d):
            if r != c and a[r, c] != 0.0:
                f = a[r, c]
                for k in range(d):
                    a[r, k] -= f * a[c, k]
                    inv[r, k] -= f * inv[c, k]
    for i in range(d):
        for k in range(d):
            co[i * d + k] = inv[i, k]


@njit(cache=True, nogil=True)
def _keep_top(pairs: np.ndarray, by: int, a: float, b: float) -> None:
    """Keep ``(a, b)`` in ``pairs`` [k, 2] if its column ``by`` beats the smallest kept (slots start at 0)."""
    low = 0
    for i in range(1, pairs.shape[0]):
        if pairs[i, by] < pairs[low, by]:
            low = i
    value = a if by == 0 else b
    if value > pairs[low, by]:
        pairs[low, 0], pairs[low, 1] = a, b


@njit(cache=True, nogil=True)
def _quantile_from_top(top: np.ndarray, n: int, q: float) -> float:
    """``numpy.quantile(x, q)`` (linear) of ``n`` values whose largest ones are ``top`` (any order)."""
    s = np.sort(top)  # ascending; s[-1 - j] is the (j+1)-th largest
    h = (n - 1) * q
    lo = int(np.floor(h))
    j = n - 1 - lo  # rank from the top of x[lo]
    below = s[s.shape[0] - 1 - j]
    if j == 0:
        return below
    return below + (h - lo) * (s[s.shape[0] - j] - below)


@njit(cache=True, nogil=True)
def _freeze_cuts(state: np.ndarray, by_raw: np.ndarray, by_win: np.ndarray, n: int, q: float) -> None:
    c_raw = _quantile_from_top(by_raw[:, 0].copy(), n, q) + 1e-12
    c_win = _quantile_from_top(by_win[:, 1].copy(), n, q) + 1e-12
    k = by_raw.shape[0]
    m = np.zeros(k)
    for i in range(2 * k):  # the top k of max(raw / c_raw, win / c_win) over both lists, each event once
        pair = by_raw[i] if i < k else by_win[i - k]
        seen = False
        if i >= k:
            for r in range(k):
                if by_raw[r, 0] == pair[0] and by_raw[r, 1] == pair[1]:
                    seen = True
        if seen:
            continue
        v = max(pair[0] / c_raw, pair[1] / c_win)
        low = 0
        for r in range(1, k):
            if m[r] < m[low]:
                low = r
        if v > m[low]:
            m[low] = v
    state[_CUTS] = c_raw
    state[_CUTS + 1] = c_win
    state[_CUTS + 2] = _quantile_from_top(m, n, q) + 1e-12


@njit(cache=True, nogil=True)
def _scored(x: np.ndarray, mu: np.ndarray, icov: np.ndarray, feat: np.ndarray, wmu: np.ndarray, wicov: np.ndarray,
            cuts: np.ndarray, contrib: np.ndarray, want: bool, settled: bool = True) -> float:  # fmt: skip
    """``max(T²_raw / c_raw, T²_win / c_win) / c``; with ``want``, the contributions of the term that is larger.

    ``settled`` False (a stream within its first ``warmup`` events): the raw term alone. The window reference was
    fitted on rows after the warm-up; a young stream's EW variance starts near 0, and every new, evicted or
    restarted stream would be flagged (score 1.0) for its first events."""
    raw = t2_centred(x, mu, icov) / cuts[0]
    win = t2_centred(feat, wmu, wicov) / cuts[1] if settled else 0.0
    if want:
        if raw >= win:
            contributions_centred(x, mu, icov, contrib)
        else:
            contributions_centred(feat, wmu, wicov, contrib)
    return max(raw, win) / cuts[2]


@njit(cache=True, nogil=True)
def self_fit_step(state: np.ndarray, count: float, x: np.ndarray, feat: np.ndarray, flagged: bool, warmup: int,
                  fit_events: int, held_events: int, q: float, contrib: np.ndarray, want: bool) -> float:  # fmt: skip
    """One event of a stream without a training reference: ``r / c`` once frozen (0 before), advancing the fit.

    ``count`` is the stream's EW event count including this event, ``feat`` its window features after it; with
    ``want``, a frozen stream's per-feature contributions go to ``contrib`` (:func:`contributions`)."""
    F = x.shape[0]
    W = 2 * F
    k = (state.shape[0] - _HEAD - F - F * F - W - W * W) // 4
    mu = state[_HEAD : _HEAD + F]
    ic = state[_HEAD + F : _HEAD + F + F * F]
    start = _HEAD + F + F * F
    wmu = state[start : start + W]
    wic = state[start + W : start + W + W * W]
    top = state[start + W + W * W :]
    by_raw = top[: 2 * k].reshape((k, 2))
    by_win = top[2 * k :].reshape((k, 2))
    c = state[_CUTS + 2]
    if c > 0.0:
        return _scored(x, mu, ic.reshape((F, F)), feat, wmu, wic.reshape((W, W)), state[_CUTS : _CUTS + 3],
                       contrib, want)  # fmt: skip
    if count <= warmup or flagged:
        return 0.0
    n_fit = state[_N_FIT]
    if n_fit < fit_events:
        _welford(n_fit, mu, ic, x)
        _welford(n_fit, wmu, wic, feat)
        state[_N_FIT] = n_fit + 1.0
        if n_fit + 1.0 >= fit_events:
            _freeze_icov(n_fit + 1.0, ic)
            _freeze_icov(n_fit + 1.0, wic)
        return 0.0
    raw = t2(x - mu, ic.reshape((F, F)))
    win = t2(feat - wmu, wic.reshape((W, W)))
    _keep_top(by_raw, 0, raw, win)
    _keep_top(by_win, 1, raw, win)
    n_held = state[_N_HELD] + 1.0
    state[_N_HELD] = n_held
    if n_held >= held_events:
        _freeze_cuts(state, by_raw, by_win, held_events, q)
    return 0.0


@njit(cache=True, nogil=True)
def envelope_step(ew: np.ndarray, selfs: np.ndarray, rows: np.ndarray, refs: np.ndarray, ok: np.ndarray,
                  flagged: np.ndarray, x: np.ndarray, window: int, warmup: int, fit_events: int, held_events: int,
                  q: float, mu: np.ndarray, icov: np.ndarray, wmu: np.ndarray, wicov: np.ndarray, cuts: np.ndarray,
                  out: np.ndarray, contrib: np.ndarray, want: bool, refcol: np.ndarray, alarm: np.ndarray,
                  refit_decay: float, refit_level: float) -> None:  # fmt: skip
    """Per event in arrival order: update the stream's EW moments, write ``r / c`` against its training reference
    (``refs >= 0``) or its own online one (:func:`self_fit_step`; 0 until frozen); with ``want``, the per-feature
    contributions into ``contrib`` [B, F] (left as they are, NaN, where no reference is frozen).

    Refit after an alarm that lasts (``refit_decay`` > 0): ``alarm[row]`` is the EW share (weight ``1 -
    refit_decay``) of the stream's events the frozen reference flags (``r / c >= 1``); once it reaches
    ``refit_level`` the stream drops its reference (``refcol[row] = -1``, its online fit cleared) and fits a new
    one from its next events, as a new stream does (:func:`self_fit_step`)."""
    F = x.shape[1]
    feat = np.empty(2 * F)
    for i in range(rows.shape[0]):
        out[i] = 0.0
        if not ok[i]:
            continue
        row = rows[i]
        _ew_update(ew[row], x[i], window, feat)
        ref = refs[i] if refcol[row] >= 0 else -1  # -1: dropped by a refit earlier in this batch
        frozen = ref >= 0 or selfs[row, _CUTS + 2] > 0.0
        if ref >= 0:
            settled = ew[row, 2 * F] > warmup
            out[i] = _scored(x[i], mu[ref], icov[ref], feat, wmu[ref], wicov[ref], cuts[ref], contrib[i], want,
                             settled)  # fmt: skip
        else:
            count = ew[row, 2 * F]
            out[i] = self_fit_step(selfs[row], count, x[i], feat, flagged[i], warmup, fit_events, held_events, q,
                                   contrib[i], want)  # fmt: skip
        if refit_decay > 0.0 and frozen:
            level = refit_decay * alarm[row] + (1.0 - refit_decay) * (1.0 if out[i] >= 1.0 else 0.0)
            alarm[row] = level
            if level >= refit_level:
                refcol[row] = -1
                selfs[row, :] = 0.0
                alarm[row] = 0.0


def training_ratios(envelope: Envelope, ew: np.ndarray, rows: np.ndarray, refs: np.ndarray, ok: np.ndarray,
                    x: np.ndarray) -> np.ndarray:  # fmt: skip
    """``r / c`` per event against ``envelope``'s training references, updating the rows' EW moments in ``ew`` (a
    [N, 2F + 1] float64 column); 0 for events without a reference, whose moments are left alone.

    For offline use (benchmarks, probes, tests): the product's own per-event loop (:func:`envelope_step`) does the
    arithmetic, so it cannot drift from what `serve` scores."""
    n = rows.shape[0]
    out, contrib = np.zeros(n), np.full((n, envelope.n_features), np.nan)
    x = np.ascontiguousarray(x, dtype=np.float64)
    scored = np.asarray(ok, dtype=np.bool_) & (refs >= 0)
    p = envelope.params
    unused = np.zeros(ew.shape[0], dtype=np.int64)
    envelope_step(ew, np.zeros((ew.shape[0], _HEAD)), rows, refs, scored, np.zeros(n, np.bool_), x, p.window,
                  p.warmup, 0, 0, 1.0 - p.false_alarm, envelope.mu, envelope.icov, envelope.wmu, envelope.wicov,
                  envelope.cuts, out, contrib, False, unused, np.zeros(ew.shape[0]), 0.0, 1.0)  # fmt: skip
    return out
