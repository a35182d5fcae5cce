"""The per-event contract: what happens to one event of one stream, written once, and the types around it.

Every scorer (the ``Detector``, the staged ``ScoringPipeline``, a test fake) applies these steps, in arrival
order, to the state row of the event's stream. The fast kernel and the slow reference (``tests/reference.py``)
are two implementations of the same steps; the parity tests hold them together, and PyTorch training
(``rnncore/training/module.py``) runs steps 2-6 over whole sequences.

==  ==========================================================================  ===================================
#   step                                                                        where
==  ==========================================================================  ===================================
0   Reject an event whose time or any value is not finite: status              ``kernels/_tile.py``
    ``INVALID_VALUE``, the row is left untouched. Keys are checked before:      ``preprocess_tile``;
    ``BAD_KEY``; a stream that finds no free row gets ``TABLE_FULL``. A value   ``state/table.py`` (keys);
    past the magnitude bound (``|v| > 1e18``, or once the stream has 10        ``detector.py``
    events and a scale ``|v - mean| > 1e6 * max(sd, |mean| / 1000, 1)``)       (``MagnitudeBound``)
    gets ``MAGNITUDE``: a value that would wreck the running mean and
    variance (sd: the largest the stream has had, so that a long constant
    run does not shrink the bound).
1   Time since the stream's previous event, ``dt = max(t - last_time, 0)``      ``preprocess_tile``
    (0 for a stream's first event).
2   Surprise of the event under the stored forecast: Gaussian NLL of the        ``preprocess_tile``
    normalised value, mean over features (NaN for a first event).
3   Update the running mean and variance of each feature with weight           ``preprocess_tile``
    ``alpha = max(1/(count+1), 1/norm_window)`` (exact average, then an EWMA).
4   Network input: ``clip((v - mean) / sqrt(var + norm_eps), +-input_clip)``,  ``preprocess_tile``
    plus ``log1p(dt / dt_scale)`` when ``time_delta_feature`` is set.
5   Advance the recurrent layers (tanh RNN, GRU or LSTM, as ``torch.nn``       ``kernels/_tile.py`` ``cell_update``
    computes them) from the stored hidden state; store the new state.          (products in ``_gemm.py``)
6   Forecast of the next value: head ``mean`` and ``softplus(scale) +          ``kernels/_tile.py`` (head)
    min_scale`` in normalised units, stored for step 2 of the next event and
    returned in original units.
7   Write back the event time and count.                                       ``preprocess_tile``
8   Calibrate the surprise into a score in [0, 1] (per-stream anomaly          ``calibration.py``,
    likelihood of the surprise and its recent average against their           ``calibration_prior.py``
    history). A new stream's history starts at the model's calibration
    prior (the surprise distribution on held-out normal data that
    `rnnwatch train` stores) with a pseudo-count of ``prior_events``, and
    scores after ``prior_warmup_events`` surprises; without a prior it
    starts empty and scores after ``warmup_events`` (200).
9   The envelope (``EnvelopedDetector``, what ``rnncore.scorer`` builds):       ``stages/envelope.py``,
    score = max(step 8, T² of the raw values and of windowed mean/log-         ``stages/enveloped.py``,
    variance against the stream's frozen reference, cut at its held-out        ``stages/selffit.py``,
    normal quantile; for a trained multi-feature stream also the T² of         ``stages/crossfit.py``
    each feature's residual from its estimate by the other features),
    the largest ratio of the three to its cut flagging only where its
    per-stream EW mean over ~``smooth_events`` (5) events reaches the
    cut. The reference is the stream's from training (at
    least ``min_history`` rows), else fitted online from its own events
    after the warm-up (flagged events skipped) in two stages: a provisional
    reference frozen after 332 events, replaced by a longer fit's after
    ~1,632 and frozen for good; until the first, this step adds nothing.
    Rarity = max of both steps' ``-log10(1 - score)``, above the threshold
    discounted by the stream's recent alarm count; an alarm lasting
    ~``refit_window`` events drops the reference (refit).
==  ==========================================================================  ===================================

Steps 0-7 run in one Numba kernel call per batch (``kernels.advance``); steps 8-9 run on the batch after it.
Rejected events change no state and do not disturb the other events of their batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple, Protocol

import numpy as np

__all__ = [
    "EventRecord",
    "EventStatus",
    "StateTableLike",
    "StepResult",
    "StreamScorer",
    "rarity_of",
    "status_reason",
]


class EventRecord(NamedTuple):
    """One event: stream key, event time (seconds since the epoch) and F values."""

    key: str
    time: float
    values: tuple[float, ...]


class EventStatus(IntEnum):
    """Per-event outcome codes shared by kernels (0, 1), the state table (2, 3) and the detector."""

    OK = 0
    INVALID_VALUE = 1
    TABLE_FULL = 2
    BAD_KEY = 3
    MAGNITUDE = 4


_REASONS = {
    EventStatus.OK: "ok",
    EventStatus.INVALID_VALUE: "non_finite_value",
    EventStatus.TABLE_FULL: "stream_table_full",
    EventStatus.BAD_KEY: "invalid_key",
    EventStatus.MAGNITUDE: "magnitude",
}


def status_reason(code: int) -> str:
    """The reason string for an event status code, e.g. 1 -> "non_finite_value" (for dead letters and metrics)."""
    try:
        return _REASONS[EventStatus(int(code))]
    except ValueError:
        return f"unknown_status_{int(code)}"


@dataclass(frozen=True)
class StepResult:
    """Per-event outputs of one batch; rejected events have score 0, NaN nll/mean/scale and a non-zero status.

    ``mean``/``scale`` are the forecast for the stream's next value in original units, shaped like the
    ``values`` passed in ([B] or [B, F]); ``nll`` is NaN for a stream's first event (no forecast yet).
    ``contributions`` (multi-feature streams under the envelope, step 9; None otherwise): each feature's share of
    the envelope's distance, summing to 1 per event; NaN where the stream has no frozen reference yet.
    ``rarity``: ``-log10`` of each event's tail probability ``1 - score``, computed in float64 from the log of
    the tail, so it keeps growing where the float32 score has reached 1: ``score >= t`` exactly when ``rarity
    >= -log10(1 - t)`` (threshold 0.99: rarity 2), and alarms above the threshold keep their order (0 where
    the score is 0; None from a scorer that does not compute it: :meth:`rarities` derives it from ``scores``).
    """

    scores: np.ndarray  # float32 [B], in [0, 1]
    nll: np.ndarray  # float32 [B]
    mean: np.ndarray  # float32 [B] or [B, F]
    scale: np.ndarray  # float32 [B] or [B, F]
    status: np.ndarray  # int8 [B], EventStatus codes
    contributions: np.ndarray | None = None  # float32 [B, F] for F > 1
    rarity: np.ndarray | None = None  # float64 [B]: -log10(1 - score) before float32 rounding, unbounded

    def __len__(self) -> int:
        return int(self.status.shape[0])

    def rarities(self) -> np.ndarray:
        """``-log10(1 - score)`` per event, float64: ``rarity`` where the scorer computes it (unbounded: alarms keep
        their order where the float32 score is 1), else from ``scores`` (a score of 1 gives the float32 limit)."""
        return self.rarity if self.rarity is not None else rarity_of(self.scores)

    @property
    def accepted(self) -> np.ndarray:
        """Boolean mask of the events that were processed."""
        return self.status == EventStatus.OK

    def reasons(self) -> list[str]:
        """Reason string per event ("ok", "non_finite_value", ...), e.g. for dead-letter records."""
        return [status_reason(code) for code in self.status.tolist()]


def rarity_of(scores: np.ndarray) -> np.ndarray:
    """``-log10(1 - score)`` of float32 scores in [0, 1], float64 (a score of 1 gives the float32 limit, 7.2).

    A scorer lifts its own float64 rarity to at least this (``np.maximum``), so that ``score >= t`` exactly when
    ``rarity >= -log10(1 - t)`` also where the float32 rounding moved a score across the threshold."""
    tail = np.maximum(1.0 - np.asarray(scores, dtype=np.float64), np.finfo(np.float32).epsneg / 2)
    return np.asarray(-np.log10(tail))


class StateTableLike(Protocol):
    """The state table's key listing and row size (the service chunks snapshots by it)."""

    row_nbytes: int

    def keys(self) -> list[str]: ...


class StreamScorer(Protocol):
    """What the service needs of a scorer: step batches by stream key, snapshot/restore rows, evict, reload."""

    @property
    def n_streams(self) -> int: ...

    @property
    def state_bytes(self) -> int: ...

    @property
    def model_version(self) -> str | None: ...

    @property
    def table(self) -> StateTableLike: ...

    def step(self, keys: Sequence[object], times: Any, values: Any) -> StepResult: ...

    def snapshot(self, keys: Iterable[str] | None = None) -> bytes: ...

    def restore(self, data: bytes) -> int: ...

    def evict_idle(self, now: float, ttl_seconds: float | None = None) -> int: ...

    def reload(self, weights: Any) -> None: ...
