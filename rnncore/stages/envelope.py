"""A per-stream operating envelope fitted on normal training data and never updated online.

Issue 16's "notion of normal a fault cannot absorb" (chosen on the fleet's TUNE seeds, ``bench/FLEET_FINDINGS.md``):
for each stream seen in training, two Hotelling T² references are fitted on its normal rows and frozen:

* raw: ``(x - mu)' S^-1 (x - mu)`` of the F raw values (joint behaviour of the features: broken correlation,
  fault states, level shifts, drift);
* window: the same over ``[m, log v]`` (2F values), the exponentially weighted mean and variance of the last
  ``~window`` values (frozen and flat-lined sensors, variance changes, noise bursts, slow drift).

A multi-feature stream keeps only the window's ``log v`` part here: its levels are judged by its cross-sensor
reference (:mod:`rnncore.stages.crossfit`: do the sensors still agree with each other?), not by their distance from
the operating points the training visited (:func:`_spread_only`).

``r = max(T²_raw / c_raw, T²_win / c_win)`` with each cut the ``1 - false_alarm`` quantile of its statistic on the
stream's held-out normal rows (the last ``1 - fit_fraction`` of its training rows); ``r`` is cut again at the
same quantile (``c``) and mapped to ``score = 1 - (1 - alarm_score) ** (r / c)``, so a score at or above
``alarm_score`` (0.99, `rnnwatch score`'s default threshold) means "beyond what the held-out normal rows
exceeded ``false_alarm`` (0.5 %) of the time". Streams without a fitted reference get score 0 here.

Online state: ``2F + 1`` float64 per stream (the EW moments and a count, :data:`EW_COLUMN`). The weights of the
moments are ``max(1/(n+1), 1/window)``, the same update (:func:`_ew_update`) in fitting and in scoring.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from rnncore.errors import EnvelopeError
from rnncore.stages.contributions import ridged_mean_icov
from rnncore.stages.crossfit import CrossFit, CrossParams, fit_cross_stream

__all__ = ["Envelope", "EnvelopeParams", "envelope_schema", "fit_envelope"]

ENVELOPE_FILE = "envelope.npz"  # its file in the model artifact (rnncore.model.envelope_file)
EW_COLUMN = "envelope_ew"  # float64 [2F + 1]: EW mean (F), EW mean square (F), event count
REF_COLUMN = "envelope_ref"  # int64: 0 not looked up yet, -1 no reference, k + 1 reference row k
ALARM_COLUMN = "envelope_alarm"  # float64 [2]: EW share of events the reference flags (refit), EW alarm count (rank)
SMOOTH_COLUMN = "envelope_smooth"  # float64: EW mean of the envelope ratio; a flag needs it >= 1 (AlarmParams)
_LOG_EPS = 1e-6


@dataclass(frozen=True, kw_only=True)
class EnvelopeParams:
    """Window of the EW moments, the held-out false-alarm target, the fit/held-out split and the warm-up."""

    window: int = 8  # 32 until 2026-12-03: chosen on the rig and fleet TUNE seeds (bench/DETECTOR_FINDINGS.md)
    false_alarm: float = 0.005
    fit_fraction: float = 0.7
    warmup: int = 32  # first rows of each stream left out (the EW moments settling; 4 windows); 200 until 2026-12-03
    alarm_score: float = 0.99
    # fewest training rows for a stream's training reference beyond warm-up + 100 (fit time only, not in
    # envelope.npz). 1500 won on NAB TUNE (a 750-row history has not seen a drifting stream's slow variation, and
    # its frozen reference floods) but leaves a short experiment's 350-450-row normal head without a reference,
    # which loses the multivariate short-file benchmark (BENCHMARKS.md "Short experiments"); 0 by default
    min_history: int = 0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise EnvelopeError(f"window must be >= 1, got {self.window}")
        if not 0.0 < self.false_alarm < 0.5:
            raise EnvelopeError(f"false_alarm must be in (0, 0.5), got {self.false_alarm}")
        if not 0.1 <= self.fit_fraction <= 0.95:
            raise EnvelopeError(f"fit_fraction must be in [0.1, 0.95], got {self.fit_fraction}")
        if not 0.0 < self.alarm_score < 1.0:
            raise EnvelopeError(f"alarm_score must be in (0, 1), got {self.alarm_score}")
        if self.min_history < 0:
            raise EnvelopeError(f"min_history must be >= 0, got {self.min_history}")

    def min_events(self) -> int:
        """Fewest training rows a stream needs for a reference (warm-up + fit + held-out): 132, so that a short
        experiment's normal head (a few hundred rows) gets one; ``min_history`` can ask for more."""
        return max(self.warmup + 100, self.min_history)


@njit(cache=True, nogil=True)
def _ew_update(ew: np.ndarray, x: np.ndarray, window: int, feat: np.ndarray) -> None:
    """Advance the EW moments by one event and write ``[m, log(v + eps)]`` into ``feat`` (2F)."""
    F = x.shape[0]
    n = ew[2 * F]
    alpha = max(1.0 / (n + 1.0), 1.0 / window)
    for j in range(F):
        ew[j] += alpha * (x[j] - ew[j])
        ew[F + j] += alpha * (x[j] * x[j] - ew[F + j])
        feat[j] = ew[j]
        feat[F + j] = np.log(max(ew[F + j] - ew[j] * ew[j], 0.0) + _LOG_EPS)
    ew[2 * F] = n + 1.0


@njit(cache=True, nogil=True)
def _t2(d: np.ndarray, icov: np.ndarray) -> float:
    total = 0.0
    for i in range(d.shape[0]):
        acc = 0.0
        for k in range(d.shape[0]):
            acc += icov[i, k] * d[k]
        total += d[i] * acc
    return total


def _features(values: np.ndarray, window: int) -> np.ndarray:
    """The window features ``[m, log v]`` after each row of one stream (the online update, row by row)."""
    T, F = values.shape
    ew, feats = np.zeros(2 * F + 1), np.empty((T, 2 * F))
    for t in range(T):
        _ew_update(ew, values[t], window, feats[t])
    return feats


@dataclass(frozen=True)
class Envelope:
    """Frozen references of the streams seen in training; row ``index[key]`` of each stacked array."""

    params: EnvelopeParams
    index: Mapping[str, int]
    mu: np.ndarray  # [K, F]
    icov: np.ndarray  # [K, F, F]
    wmu: np.ndarray  # [K, 2F]
    wicov: np.ndarray  # [K, 2F, 2F]
    cuts: np.ndarray  # [K, 3]: c_raw, c_win, c
    cross: CrossFit | None = None  # the cross-sensor references of the same rows (rnncore.stages.crossfit)

    @classmethod
    def empty(cls, n_features: int, params: EnvelopeParams | None = None) -> Envelope:
        """An envelope with no training reference (every stream fits its own, ``rnncore.stages.selffit``)."""
        F = n_features
        return cls(params if params is not None else EnvelopeParams(), {}, np.zeros((0, F)), np.zeros((0, F, F)),
                   np.zeros((0, 2 * F)), np.zeros((0, 2 * F, 2 * F)), np.zeros((0, 3)))  # fmt: skip

    @property
    def n_features(self) -> int:
        """Values per event (F)."""
        return int(self.mu.shape[1])

    def refs(self, keys: Sequence[object]) -> np.ndarray:
        """Reference row per key, -1 for a stream without one."""
        return np.fromiter((self.index.get(str(k), -1) for k in keys), dtype=np.int64, count=len(keys))

    def row_refs(self, column: np.ndarray, rows: np.ndarray, ok: np.ndarray, keys: Sequence[object]) -> np.ndarray:
        """Reference row per event from the rows' cached :data:`REF_COLUMN`, looking a key up only the first time
        its stream is seen (a dict lookup per event costs more than the envelope itself); -1 where none."""
        safe = np.where(ok, rows, 0)
        stored = np.where(ok, column[safe], -1)
        new = np.flatnonzero(stored == 0)
        if new.size:
            found = self.refs([keys[i] for i in new.tolist()])
            stored[new] = np.where(found >= 0, found + 1, -1)
            column[rows[new]] = stored[new]
        return np.where(stored > 0, stored - 1, -1)

    def scores(self, ratio: np.ndarray) -> np.ndarray:
        """Map ``r / c`` to [0, 1]: ``alarm_score`` exactly at the cut, 0 for r = 0, towards 1 beyond."""
        return np.asarray(1.0 - (1.0 - self.params.alarm_score) ** np.maximum(ratio, 0.0))

    def rarity(self, ratio: np.ndarray) -> np.ndarray:
        """``-log10(1 - score)`` of :meth:`scores`, unbounded: ``(r / c) * -log10(1 - alarm_score)`` (2 at the cut)."""
        return np.asarray(np.maximum(ratio, 0.0) * -np.log10(1.0 - self.params.alarm_score))

    def describe(self) -> dict[str, Any]:
        """What the artifact's ``model.json`` records about the envelope (and `rnnwatch train` prints)."""
        p = self.params
        return {
            "file": ENVELOPE_FILE,
            "streams": len(self.index),
            "n_features": self.n_features,
            "window": p.window,
            "held_out_fraction": 1 - p.fit_fraction,
            "false_alarm_target_per_event": p.false_alarm,
            "default_threshold": p.alarm_score,
            "cross_sensor_streams": self.cross.streams if self.cross is not None else 0,
        }


def envelope_schema(n_features: int) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The per-stream column the online envelope needs beside the Detector's."""
    return {
        EW_COLUMN: ((2 * n_features + 1,), np.dtype(np.float64)),
        REF_COLUMN: ((), np.dtype(np.int64)),
        ALARM_COLUMN: ((2,), np.dtype(np.float64)),
        SMOOTH_COLUMN: ((), np.dtype(np.float64)),
    }


def fit_envelope(records: Iterable[Any], params: EnvelopeParams | None = None,
                 cross: CrossParams | None = None) -> Envelope:  # fmt: skip
    """Fit every stream's references on normal records (``key``, ``time``, ``values``); streams with fewer than
    ``params.min_events()`` rows get none. Multi-feature streams also get a cross-sensor reference
    (:mod:`rnncore.stages.crossfit`) on the same fit and held-out rows. Raises EnvelopeError when no stream has
    enough rows."""
    params = params if params is not None else EnvelopeParams()
    cross = cross if cross is not None else CrossParams()
    by_key: dict[str, list[tuple[float, tuple[float, ...]]]] = defaultdict(list)
    for r in records:
        by_key[str(r.key)].append((float(r.time), tuple(r.values)))
    parts: list[tuple[str, tuple[np.ndarray, ...]]] = []
    for key, rows in sorted(by_key.items()):
        if len(rows) < params.min_events():
            continue
        rows.sort(key=lambda row: row[0])
        values = np.array([v for _, v in rows], dtype=np.float64)
        fit, held = _split(len(values), params)
        own = _fit_stream(values, params)
        parts.append((key, (*own, *fit_cross_stream(values, fit, held, 1.0 - params.false_alarm, cross))))
    if not parts:
        raise EnvelopeError(f"no stream has the {params.min_events()} normal events an envelope needs")
    stacked = [np.stack([p[i] for _, p in parts]) for i in range(11)]
    dmu, dsd, beta, rmu, ricov, cut = stacked[5:]
    crossfit = CrossFit(cross, dmu, dsd, beta, rmu, ricov, cut[:, 0])
    mu, icov, wmu, wicov, cuts = stacked[:5]
    return Envelope(params, {k: i for i, (k, _) in enumerate(parts)}, mu, icov, wmu, wicov, cuts, cross=crossfit)


def _spread_only(fit_values: np.ndarray, fit_feats: np.ndarray) -> tuple[np.ndarray, ...]:
    """References that weigh only the EW log variances: a zero raw inverse covariance and a window one whose
    mean block is zero (T² of ``log v`` alone against its own covariance on the fit rows).

    Why (chosen on rig and fleet TUNE seeds, BENCHMARKS.md "Levels judged by the cross-sensor
    reference"): for a stream with a cross-sensor reference the features' levels are judged by whether they
    still agree with each other; a distance from the training rows' levels also flags every operating point the
    training did not visit (machines at an unseen load flagged 23 % of normal rows), and diluted the spread
    term's cut (frozen sensors, cavitation noise)."""
    F = fit_values.shape[1]
    wmu = fit_feats.mean(axis=0)
    wicov = np.zeros((2 * F, 2 * F))
    wicov[F:, F:] = ridged_mean_icov(fit_feats[:, F:])[1]
    return fit_values.mean(axis=0), np.zeros((F, F)), wmu, wicov


def _split(T: int, params: EnvelopeParams) -> tuple[slice, slice]:
    """A stream's fit rows (after the warm-up) and held-out rows (the last ``1 - fit_fraction``)."""
    fit = slice(params.warmup, params.warmup + int((T - params.warmup) * params.fit_fraction))
    return fit, slice(fit.stop, T)


def _fit_stream(values: np.ndarray, params: EnvelopeParams) -> tuple[np.ndarray, ...]:
    """One stream's raw and window references and cuts. A multi-feature stream's (it also gets a cross-sensor
    reference) keep only the window's spread: see :func:`_spread_only`."""
    feats = _features(values, params.window)
    fit, held = _split(values.shape[0], params)
    if values.shape[1] > 1:
        mu, icov, wmu, wicov = _spread_only(values[fit], feats[fit])
    else:
        mu, icov = ridged_mean_icov(values[fit])
        wmu, wicov = ridged_mean_icov(feats[fit])
    q = 1.0 - params.false_alarm

    def t2(d: np.ndarray, ic: np.ndarray) -> np.ndarray:
        return np.asarray(np.einsum("ij,jk,ik->i", d, ic, d))

    raw, win = t2(values[held] - mu, icov), t2(feats[held] - wmu, wicov)
    c_raw, c_win = float(np.quantile(raw, q)) + 1e-12, float(np.quantile(win, q)) + 1e-12
    c = float(np.quantile(np.maximum(raw / c_raw, win / c_win), q)) + 1e-12
    return mu, icov, wmu, wicov, np.array([c_raw, c_win, c])
