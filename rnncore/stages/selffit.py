"""The envelope of a stream without a training reference, fitted online from its own history in two stages.

A stream that `rnnwatch train` did not see (a new sensor joining the fleet, or one with too few training rows)
gets the same two frozen T² references as a trained one (:mod:`rnncore.stages.envelope`: raw values, and the EW
``[m, log v]`` window features), fitted from the stream's own events, in phases counted per stream:

1. warm-up: its first ``EnvelopeParams.warmup`` events (the EW moments settling) are not used;
2. fit: the next ``fit_events`` accepted events give the mean and covariance of both (Welford's update); the
   covariance is then ridged exactly as in training and inverted in place;
3. held-out: the next ``held_events`` events give the cuts. Only the ``top_k`` largest raw and window
   statistics are kept (each with its partner), which is enough to read the ``1 - false_alarm`` quantile of each
   exactly (``numpy.quantile``'s linear rule) and then that of ``max(raw / c_raw, win / c_win)``: an event among
   the top ``k`` of the max is among the top ``k`` of one of the two. This **provisional** reference scores from
   then on (after 332 events at the defaults: inside a short experiment file's normal head);
4. second stage (``final_fit_events`` > 0): phases 2 and 3 again over the next ``final_fit_events`` and
   ``final_held_events`` events, into a second set of moments, while the provisional reference scores; when
   its cuts are read the second reference **replaces** the provisional one, and is frozen for good (after 1,632
   events at the defaults, and later by the events skipped). 200 events see too little of a long-lived stream's
   normal variety (BENCHMARKS.md "Short experiments"); a file of 1,300 rows never reaches the second stage's
   end, so a short stream is scored exactly as by the provisional reference alone.

Every phase skips the events the stream is flagged on (the Detector's score at or above ``alarm_score``), so an
onset the forecaster catches does not become part of the stream's normal. The second stage can also skip the
events whose provisional ``r / c`` is at or beyond ``final_skip_ratio``: 1 skips everything the provisional flags,
but the provisional is too narrow, and what it flags is the normal variety the second stage must learn; by default
(inf) it skips only the Detector's flags, so a fault that begins during the second stage and that the forecaster
does not flag is learnt. Measured on the fleet's TUNE new streams (BENCHMARKS.md "Short experiments"), inf won
against 1, 4, 16, 64 and 256, also with the faults beginning inside the second stage. Until the provisional
reference is frozen the stream's envelope score is 0 (the Detector's score alone).

State: :func:`self_fit_width` float64 per stream in :data:`SELF_COLUMN`: a head (the current stage's two counts,
the three cuts), the reference (means and inverse covariances), the ``top_k`` pairs (the provisional's, then,
once its cuts are read, the second stage's) and the second stage's moments (53 = 424 B at F = 1 with ``top_k``
8; 725 = 5,800 B at F = 8). The second stage costs ``3F + 5F²`` values (64 B at F = 1, 2,752 B at F = 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from rnncore.errors import EnvelopeError
from rnncore.stages.contributions import contributions, contributions_centred, t2_centred
from rnncore.stages.envelope import Envelope, _ew_update

__all__ = ["SELF_COLUMN", "SelfFitParams", "contributions", "envelope_step", "self_fit_schema", "self_fit_width"]

SELF_COLUMN = "envelope_self"  # float64 [self_fit_width(F)]: the online fit, see the module docstring
_N_FIT, _N_HELD, _CUTS = 0, 1, 2  # offsets: the stage's events fitted (-1: final), held out; (c_raw, c_win, c)
_HEAD = 5
_PLAN = 5  # float64 values of SelfFitParams.plan(): what the Numba step reads


@dataclass(frozen=True, kw_only=True)
class SelfFitParams:
    """Lengths of the two stages' fit and held-out phases (events after the warm-up), what the second skips, and
    the top-k kept for the cuts. ``final_fit_events`` 0: one stage (the provisional reference stays)."""

    fit_events: int = 200  # 900 until 2026-12-03; short enough for a short experiment's normal head (BENCHMARKS.md)
    held_events: int = 100  # 400 until 2026-12-03
    final_fit_events: int = 900  # the second stage (2026-12-04): a long-lived stream's reference as the old 900:400
    final_held_events: int = 400
    # the second stage also skips provisional r / c >= this; inf (only the Detector's flags, as the first stage)
    # won on the fleet's TUNE new streams against 1, 4, 16, 64 and 256, also where faults begin inside it
    final_skip_ratio: float = float("inf")
    top_k: int = 8

    def __post_init__(self) -> None:
        if self.fit_events < 20 or not (self.final_fit_events == 0 or self.final_fit_events >= 20):
            raise EnvelopeError(
                f"fit_events and final_fit_events must be >= 20 (a covariance needs events; final 0: one stage), "
                f"got {self.fit_events}, {self.final_fit_events}"
            )
        if self.held_events < 1 or self.final_held_events < 1 or self.top_k < 2:
            raise EnvelopeError(
                f"held_events and final_held_events must be >= 1 and top_k >= 2, got {self.held_events}, "
                f"{self.final_held_events}, {self.top_k}"
            )
        if not self.final_skip_ratio >= 1.0:
            raise EnvelopeError(
                f"final_skip_ratio must be >= 1 (1: skip all the provisional reference flags), got "
                f"{self.final_skip_ratio}"
            )

    @property
    def two_stage(self) -> bool:
        """Whether a second fit replaces the provisional reference."""
        return self.final_fit_events > 0

    def frozen_after(self) -> tuple[int, int]:
        """Events after the warm-up until the provisional reference scores, and until the final one replaces it
        (the same when one stage; later by as many as are skipped)."""
        first = self.fit_events + self.held_events
        return first, first + (self.final_fit_events + self.final_held_events if self.two_stage else 0)

    def plan(self) -> np.ndarray:
        """The lengths and the skip ratio as the Numba step reads them (float64 [5])."""
        final = (self.final_fit_events, self.final_held_events) if self.two_stage else (0, 0)
        return np.array([self.fit_events, self.held_events, *final, self.final_skip_ratio], dtype=np.float64)

    def check_quantile(self, false_alarm: float) -> None:
        """Raise EnvelopeError when ``top_k`` cannot hold what either stage's exact held-out quantile needs."""
        for held in (self.held_events, self.final_held_events) if self.two_stage else (self.held_events,):
            needed = _needed(held, 1.0 - false_alarm)
            if needed > self.top_k:
                raise EnvelopeError(
                    f"the {1 - false_alarm:g} quantile of {held} held-out events needs the top {needed}; "
                    f"top_k is {self.top_k}: raise top_k or shorten the held-out phase"
                )


def _needed(n: int, q: float) -> int:
    """How many of the largest of ``n`` values ``numpy.quantile(x, q)`` (linear) reads."""
    return n - int(np.floor((n - 1) * q))


def _block(n_features: int) -> int:
    """float64 values of one reference: raw mean and (co-moments or) inverse covariance, then the window ones."""
    F = n_features
    return F + F * F + 2 * F + 4 * F * F


def self_fit_width(n_features: int, top_k: int) -> int:
    """float64 values of :data:`SELF_COLUMN` per stream: head, the reference, the top pairs, the second stage."""
    return _HEAD + 2 * _block(n_features) + 4 * top_k


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
    """Replace the co-moment sum by the inverse of the ridged sample covariance (training's ``ridged_mean_icov``)."""
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
def _advance(state: np.ndarray, block: np.ndarray, top: np.ndarray, x: np.ndarray, feat: np.ndarray,
             fit_events: float, held_events: float, q: float) -> bool:  # fmt: skip
    """One accepted event of a stage into ``block`` (moments, then mean and inverse covariance) and ``top`` (the
    held-out pairs), counted in the head; True when its held-out phase is complete and its cuts are in the head."""
    F = x.shape[0]
    W = 2 * F
    mu, ic = block[:F], block[F : F + F * F]
    wmu, wic = block[F + F * F : F + F * F + W], block[F + F * F + W :]
    n_fit = state[_N_FIT]
    if n_fit < fit_events:
        _welford(n_fit, mu, ic, x)
        _welford(n_fit, wmu, wic, feat)
        state[_N_FIT] = n_fit + 1.0
        if n_fit + 1.0 >= fit_events:
            _freeze_icov(n_fit + 1.0, ic)
            _freeze_icov(n_fit + 1.0, wic)
        return False
    k = top.shape[0] // 4
    by_raw = top[: 2 * k].reshape((k, 2))
    by_win = top[2 * k :].reshape((k, 2))
    raw = t2_centred(x, mu, ic.reshape((F, F)))
    win = t2_centred(feat, wmu, wic.reshape((W, W)))
    _keep_top(by_raw, 0, raw, win)
    _keep_top(by_win, 1, raw, win)
    n_held = state[_N_HELD] + 1.0
    state[_N_HELD] = n_held
    if n_held < held_events:
        return False
    _freeze_cuts(state, by_raw, by_win, int(held_events), q)
    return True


@njit(cache=True, nogil=True)
def self_fit_step(state: np.ndarray, count: float, x: np.ndarray, feat: np.ndarray, flagged: bool, warmup: int,
                  plan: np.ndarray, q: float, contrib: np.ndarray, want: bool) -> float:  # fmt: skip
    """One event of a stream without a training reference: ``r / c`` against its frozen reference (0 before the
    provisional one is frozen), advancing whichever stage is running (``plan``: :meth:`SelfFitParams.plan`).

    ``count`` is the stream's EW event count including this event, ``feat`` its window features after it; with
    ``want``, a frozen stream's per-feature contributions go to ``contrib`` (:func:`contributions`)."""
    F = x.shape[0]
    W = 2 * F
    size = F + F * F + W + W * W
    k = (state.shape[0] - _HEAD - 2 * size) // 4
    ref = state[_HEAD : _HEAD + size]
    top = state[_HEAD + size : _HEAD + size + 4 * k]
    second = state[_HEAD + size + 4 * k :]
    if state[_CUTS + 2] > 0.0:  # a reference is frozen: the provisional one, or the final one (count -1)
        r = _scored(x, ref[:F], ref[F : F + F * F].reshape((F, F)), feat, ref[F + F * F : F + F * F + W],
                    ref[F + F * F + W :].reshape((W, W)), state[_CUTS : _CUTS + 3], contrib, want)  # fmt: skip
        if state[_N_FIT] < 0.0 or flagged or r >= plan[4]:
            return r
        if _advance(state, second, top, x, feat, plan[2], plan[3], q):  # the final cuts are in the head now
            ref[:] = second
            state[_N_FIT] = -1.0
        return r
    if count <= warmup or flagged:
        return 0.0
    if _advance(state, ref, top, x, feat, plan[0], plan[1], q):  # the provisional reference scores from the next
        state[_N_FIT] = 0.0 if plan[2] > 0.0 else -1.0
        state[_N_HELD] = 0.0
        top[:] = 0.0  # the second stage's held-out pairs
    return 0.0


@njit(cache=True, nogil=True)
def envelope_step(ew: np.ndarray, selfs: np.ndarray, rows: np.ndarray, refs: np.ndarray, ok: np.ndarray,
                  flagged: np.ndarray, x: np.ndarray, window: int, warmup: int, plan: np.ndarray, q: float,
                  mu: np.ndarray, icov: np.ndarray, wmu: np.ndarray, wicov: np.ndarray, cuts: np.ndarray,
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
            out[i] = self_fit_step(selfs[row], count, x[i], feat, flagged[i], warmup, plan, q, contrib[i], want)
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
                  p.warmup, np.zeros(_PLAN), 1.0 - p.false_alarm, envelope.mu, envelope.icov, envelope.wmu,
                  envelope.wicov, envelope.cuts, out, contrib, False, unused, np.zeros(ew.shape[0]), 0.0,
                  1.0)  # fmt: skip
    return out
