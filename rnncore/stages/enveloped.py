"""The Detector with a frozen per-stream operating envelope (:mod:`rnncore.stages.envelope`) beside its forecast score.

``EnvelopedDetector.step`` has the Detector's contract; each accepted event's score is
``max(Detector score, envelope score)``: the forecaster's calibrated surprise catches onsets (spikes, bursts), the
envelope, never updated once fitted, keeps flagging what persists (level shifts, drift, frozen sensors, sustained
fault states, broken correlation). A stream seen in training uses its reference from the artifact's
``envelope.npz``; every other stream fits its own from its early history (:mod:`rnncore.stages.selffit`: a
provisional reference after 332 events, replaced by one fitted over its next 1,300), so every stream gets a notion
of normal. The envelope's moments and online fits live in extra columns of the same state table, so eviction,
snapshots and restores cover them. For a multi-feature stream each result also says which
features drive the envelope's distance (``StepResult.contributions``, :func:`rnncore.stages.selffit.contributions`).

Each result's ``rarity`` (``-log10(1 - score)``, unbounded) ranks the alarms; above the threshold it is discounted
by the stream's count of recent alarms (:class:`AlarmParams`), so a fresh onset ranks above the 500th event of
a lasting state while both stay flagged. A reference whose alarm lasts far longer than any fault can be
dropped and refitted (:class:`AlarmParams` ``refit_window``). The envelope flags only where a short per-stream EW
mean of its ratio reaches the cut (:class:`AlarmParams` ``smooth_events``): most false alarm episodes were single
events just over the cut, a fault state lasts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from rnncore.contract import rarity_of
from rnncore.detector import Detector, StepResult
from rnncore.errors import DetectorError
from rnncore.model.weights import ModelWeights
from rnncore.stages.crossfit import CROSS_COLUMN, cross_schema, cross_step
from rnncore.stages.envelope import (
    ALARM_COLUMN,
    EW_COLUMN,
    REF_COLUMN,
    SMOOTH_COLUMN,
    Envelope,
    EnvelopeError,
    envelope_schema,
)
from rnncore.stages.selffit import SELF_COLUMN, SelfFitParams, envelope_step, self_fit_schema
from rnncore.state.table import EventStatus

__all__ = ["AlarmParams", "EnvelopedDetector"]


@dataclass(frozen=True, kw_only=True)
class AlarmParams:
    """What makes an envelope alarm: a smoothed ratio; what a lasting one does: a refit and a rank for fresh onsets.

    ``smooth_events`` (0: off): the envelope flags an event only where the per-stream EW mean of its ratio,
    ``s = a s + (1 - a) r`` with ``a = 1 - 1 / smooth_events``, reaches the cut (``s >= 1``): one event just over
    the cut is not an alarm, a ratio of twice the cut crosses it on the fault's 4th event (at 5). A flagged event
    is scored by its own ratio (at least the cut), so the rank still sees how far out it is; below the cut the
    score is ``s``'s. Why 5: chosen on the fleet and rig TUNE seeds (BENCHMARKS.md "Smoothed envelope alarms");
    the forecast's score, which catches spikes, is not smoothed.

    ``refit_window`` (0: off) and ``refit_level``: once the EW share (over ~``refit_window`` events) of a
    stream's events its frozen reference flags reaches ``refit_level``, the reference is dropped and the stream
    fits a new one from its next events. ``rank_events`` (0: off) and ``rank_window``: above the threshold the
    rarity is ``2 + (rarity - 2) / (1 + n / rank_events)`` with ``n`` the EW count (over ~``rank_window``
    events) of the stream's earlier alarms: a lasting state stays at or above the threshold, and a fresh onset
    ranks above it."""

    smooth_events: float = 5.0
    refit_window: int = 4000
    refit_level: float = 0.5
    rank_events: float = 1.0
    rank_window: int = 1000

    def __post_init__(self) -> None:
        if self.refit_window < 0 or not 0.0 < self.refit_level <= 1.0:
            raise EnvelopeError(
                f"refit_window must be >= 0 and refit_level in (0, 1], got {self.refit_window}, {self.refit_level}"
            )
        if not (self.smooth_events == 0.0 or self.smooth_events >= 1.0):
            raise EnvelopeError(f"smooth_events must be 0 (off) or >= 1, got {self.smooth_events}")
        if self.rank_events < 0 or self.rank_window < 1:
            raise EnvelopeError(f"rank_events must be >= 0, rank_window >= 1: {self.rank_events}, {self.rank_window}")

    def smoothed(self, ratio: np.ndarray) -> np.ndarray:
        """One stream's envelope ratios, in time order from its first event, as scoring gates them."""
        out = np.array(ratio, dtype=np.float64)
        if self.smooth_events > 0:
            n = out.shape[0]
            _smoothed(out, np.zeros(n, np.int64), np.ones(n, np.bool_), np.zeros(1), 1.0 - 1.0 / self.smooth_events)
        return out


@njit(cache=True, nogil=True)
def _smoothed(ratio: np.ndarray, rows: np.ndarray, ok: np.ndarray, smooth: np.ndarray, decay: float) -> None:
    """Gate each accepted event's ratio by its stream's EW mean of ratios (in place, in arrival order): below the
    cut the mean replaces it; at or over the cut the event keeps its own ratio, at least the cut (its rank). A
    ratio that is not finite is left as it is and does not enter the mean, so it cannot poison the stream's state."""
    for i in range(rows.shape[0]):
        if not ok[i] or not np.isfinite(ratio[i]):
            continue
        row = rows[i]
        s = decay * smooth[row] + (1.0 - decay) * ratio[i]
        smooth[row] = s
        ratio[i] = s if s < 1.0 else max(1.0, ratio[i])


@njit(cache=True, nogil=True)
def _ranked(rarity: np.ndarray, rows: np.ndarray, ok: np.ndarray, alarm: np.ndarray, threshold: float,
            per: float, decay: float) -> None:  # fmt: skip
    """Discount each rarity above ``threshold`` by the stream's EW count of earlier alarms (in place, in order)."""
    for i in range(rows.shape[0]):
        if not ok[i]:
            continue
        row = rows[i]
        n = alarm[row, 1]
        hit = rarity[i] >= threshold
        if hit:
            rarity[i] = threshold + (rarity[i] - threshold) / (1.0 + n / per)
        alarm[row, 1] = decay * n + (1.0 if hit else 0.0)


class EnvelopedDetector(Detector):
    """A :class:`Detector` whose scores are lifted by each stream's frozen envelope (trained or self-fitted)."""

    def __init__(
        self,
        weights: ModelWeights,
        envelope: Envelope | None = None,
        *,
        self_fit: SelfFitParams | None = None,
        alarm: AlarmParams | None = None,
        **kwargs: Any,
    ) -> None:
        """``envelope``: the training references (None: every stream fits its own); ``self_fit``: the online fit's
        lengths; ``alarm``: refit and rank of lasting alarms; ``kwargs`` as for :class:`Detector`
        (``max_streams``, ``idle_ttl_seconds``, ``scoring``)."""
        self.alarm = alarm if alarm is not None else AlarmParams()
        features = weights.config.n_features
        envelope = envelope if envelope is not None else Envelope.empty(features)
        if envelope.n_features != features:
            raise DetectorError(
                f"the envelope was fitted on {envelope.n_features} features, the model has "
                f"{features}: retrain both with rnnwatch train"
            )
        self.self_fit = self_fit if self_fit is not None else SelfFitParams()
        self.self_fit.check_quantile(envelope.params.false_alarm)
        self._plan = self.self_fit.plan()
        schema = {**envelope_schema(features), **self_fit_schema(features, self.self_fit), **cross_schema(features)}
        super().__init__(weights, extra_state=schema, **kwargs)
        self.table.allow_missing_on_import([SMOOTH_COLUMN])  # added 2026-12-04: older changelogs still restore
        self.envelope = envelope

    def replace_envelope(self, envelope: Envelope) -> None:
        """Score with a new envelope (a retrained artifact), keeping every stream's EW moments and online fit; the
        cached reference indices are cleared, so each stream looks its key up in the new envelope on its next
        event (a self-fitted stream the new training saw switches to its trained reference)."""
        if envelope.n_features != self.envelope.n_features:
            raise DetectorError(
                f"the new envelope has {envelope.n_features} features, the running one {self.envelope.n_features}"
            )
        self.envelope = envelope
        self.table.columns[REF_COLUMN][:] = 0

    def step(self, keys: Sequence[object], times: Any, values: Any) -> StepResult:
        """Score a batch in arrival order: the Detector's step, then the envelope over the same rows."""
        keys = keys if isinstance(keys, list) else list(keys)
        rows, status = self.assign_rows(keys, times, values)
        result = self.step_rows(rows, status, times, values)
        envelope, p = self.envelope, self.envelope.params
        x = np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(len(keys), envelope.n_features))
        ok = result.status == EventStatus.OK
        columns = self.table.columns
        refs = envelope.row_refs(columns[REF_COLUMN], rows, ok, keys)
        flagged = result.scores >= p.alarm_score  # the online fit skips what the forecaster already flags
        ratio = np.zeros(len(keys))
        want = envelope.n_features > 1
        contrib = np.full((len(keys), envelope.n_features if want else 0), np.nan)
        a = self.alarm
        refit_decay = 1.0 - 1.0 / a.refit_window if a.refit_window > 0 else 0.0
        share = columns[ALARM_COLUMN][:, 0]  # a view: the refit's EW share of flagged events, written in place
        envelope_step(columns[EW_COLUMN], columns[SELF_COLUMN], rows, refs, ok, flagged, x, p.window, p.warmup,
                      self._plan, 1.0 - p.false_alarm, envelope.mu, envelope.icov, envelope.wmu, envelope.wicov,
                      envelope.cuts, ratio, contrib, want, columns[REF_COLUMN], share, refit_decay,
                      a.refit_level)  # fmt: skip
        cross = envelope.cross
        if cross is not None and CROSS_COLUMN in columns and cross.streams:
            kept = np.where(ok, columns[REF_COLUMN][np.where(ok, rows, 0)], -1)  # -1 where a refit dropped it
            cp = cross.params
            cross_step(columns[CROSS_COLUMN], rows, np.where(kept > 0, refs, -1), ok, x, p.warmup, cross.dmu,
                       cross.dsd, cross.beta, cross.rmu, cross.ricov, cross.cut, cp.lag_window, cp.smooth_window,
                       ratio, contrib, want)  # fmt: skip
        if a.smooth_events > 0:
            _smoothed(ratio, rows, ok, columns[SMOOTH_COLUMN], 1.0 - 1.0 / a.smooth_events)
        scores = np.where(ok, np.maximum(result.scores, envelope.scores(ratio)), 0.0).astype(np.float32)
        rarity = np.where(ok, np.maximum(result.rarities(), envelope.rarity(ratio)), 0.0)
        rarity = np.maximum(rarity, rarity_of(scores))  # exact at the threshold despite the float32 rounding
        if a.rank_events > 0:
            at = float(-np.log10(1.0 - p.alarm_score))
            _ranked(rarity, rows, ok, columns[ALARM_COLUMN], at, a.rank_events, 1.0 - 1.0 / a.rank_window)
        return StepResult(scores=scores, nll=result.nll, mean=result.mean, scale=result.scale, status=result.status,
                          contributions=contrib.astype(np.float32) if want else None, rarity=rarity)  # fmt: skip
