"""The calibration prior `rnnwatch train` stores (:mod:`rnncore.calibration_prior`), computed on the product's path.

No torch: every number here comes from the trained weights run through the online Detector (the Numba kernels and
:func:`rnncore.calibration.calibrate`), each stream from its first event, as `serve` would see it, and read on the
validation events only (event ``k`` of a stream, 0-based, is one when ``k > train_steps``: its surprise is the
forecast of a validation step):

1. the moments: a Detector *without* a prior, so that the surprise ``s`` (clipped as the calibration clips it) and
   its short average ``a`` (the calibration's state after the event) are those a stream's own statistics learn;
   pooled over all validation events of all streams (the distribution a new stream is drawn from);
2. the stated false-alarm rates at the default threshold, with the prior in place and the artifact's envelope:
   ``trained_streams``, the scorer `serve` builds over the training streams' validation events; ``new_streams``,
   the same events replayed as streams nobody has seen (new keys: no training reference, scored from their first
   event on), the situation the prior is for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from rnncore.calibration import STATS_COLUMN, ScoringParams
from rnncore.calibration_prior import PRIOR_FIELD, CalibrationPrior
from rnncore.contract import EventStatus, StreamScorer
from rnncore.detector import Detector
from rnncore.model.weights import ModelWeights
from rnncore.scorer import build_scorer
from rnncore.stages.envelope import Envelope
from rnncore.training.dataset import Dataset

__all__ = ["ValidationStream", "fit_prior", "validation_streams", "with_prior", "without_prior"]

_SHORT = 1  # the short average's column in the calibration state (rnncore.calibration)


@dataclass(frozen=True)
class ValidationStream:
    """One stream's events in time order and the index of its first validation event."""

    key: str
    times: np.ndarray  # [T] float64
    values: np.ndarray  # [T, F] float64
    first_validation: int


def validation_streams(dataset: Dataset) -> list[ValidationStream]:
    """The dataset's streams that have validation events (raw values and times, as the service receives them)."""
    return [
        ValidationStream(s.key, s.seq.times, s.seq.values, s.train_steps + 1)
        for s in dataset.streams
        if s.train_steps + 1 < len(s.seq)
    ]


def _lockstep(streams: Sequence[ValidationStream], start: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(k, stream indices) for each event index k from ``start[i]`` on: one event per stream and batch, in order."""
    lengths = np.array([len(s.times) for s in streams])
    first = np.asarray(start)
    for k in range(int(first.min()), int(lengths.max())):
        index = np.flatnonzero((first <= k) & (k < lengths))
        if index.size:  # none where the streams that started have ended and the others have not begun
            yield k, index


def _step(
    scorer: StreamScorer, streams: Sequence[ValidationStream], index: np.ndarray, k: int, keys: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event k of each indexed stream in one batch; returns (scores, nll, ok)."""
    times = np.array([streams[i].times[k] for i in index])
    values = np.stack([streams[i].values[k] for i in index])
    result = scorer.step([keys[i] for i in index], times, values)
    return result.scores, result.nll, result.status == EventStatus.OK


def surprise_moments(
    weights: ModelWeights, streams: Sequence[ValidationStream], params: ScoringParams | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The calibration's inputs on every validation event with a surprise: clipped ``s`` and short average ``a``
    (float64 [N] each), from a Detector without a prior run over each stream from its first event."""
    params = params if params is not None else ScoringParams()
    plain = ModelWeights(
        weights.config, weights.params, {k: v for k, v in weights.metadata.items() if k != PRIOR_FIELD}
    )
    detector = Detector(plain, max_streams=max(len(streams), 1), scoring=params)
    keys = [s.key for s in streams]
    surprises, shorts = [], []
    for k, index in _lockstep(streams, [0] * len(streams)):
        _, nll, ok = _step(detector, streams, index, k, keys)
        valid = ok & np.isfinite(nll) & np.array([k >= streams[i].first_validation for i in index])
        if valid.any():
            rows = detector.table.lookup([keys[i] for i in index[valid]])
            surprises.append(np.clip(nll[valid].astype(np.float64), -params.max_surprise, params.max_surprise))
            shorts.append(detector.table.columns[STATS_COLUMN][rows, _SHORT].astype(np.float64))
    if not surprises:
        return np.empty(0), np.empty(0)
    return np.concatenate(surprises), np.concatenate(shorts)


def without_prior(weights: ModelWeights) -> ModelWeights:
    """The same weights without a calibration prior (what every model was before `rnnwatch train` stored one)."""
    return ModelWeights(weights.config, weights.params, {k: v for k, v in weights.metadata.items() if k != PRIOR_FIELD})


def with_prior(weights: ModelWeights, prior: CalibrationPrior) -> ModelWeights:
    """The same weights with ``prior`` in their metadata, as `load_artifact` returns them from the stored artifact."""
    return ModelWeights(weights.config, weights.params, {**weights.metadata, PRIOR_FIELD: prior.to_dict()})


def alarm_rate(
    weights: ModelWeights, envelope: Envelope | None, streams: Sequence[ValidationStream], threshold: float,
    *, new_streams: bool,
) -> float:  # fmt: skip
    """Share of validation events the served scorer (``build_scorer``, its defaults) flags at ``threshold``:
    each training stream run from its first event, or (``new_streams``) its validation events alone under a new
    key, from their first on."""
    scorer = build_scorer(weights, envelope, max_streams=max(len(streams), 1))
    keys = [f"\x00new-stream-{i}" if new_streams else s.key for i, s in enumerate(streams)]
    start = [s.first_validation if new_streams else 0 for s in streams]
    flagged = counted = 0
    for k, index in _lockstep(streams, start):
        scores, _, ok = _step(scorer, streams, index, k, keys)
        valid = ok & np.array([k >= streams[i].first_validation for i in index])
        flagged += int((scores[valid] >= threshold).sum())
        counted += int(valid.sum())
    return flagged / counted if counted else 0.0


def fit_prior(
    weights: ModelWeights,
    dataset: Dataset,
    envelope: Envelope | None,
    threshold: float,
    params: ScoringParams | None = None,
) -> CalibrationPrior | None:
    """The prior of these weights on the dataset's validation events, with its stated false-alarm rates (module
    docstring); None when no validation event has a surprise (nothing to learn it from)."""
    streams = validation_streams(dataset)
    if not streams:
        return None
    s, a = surprise_moments(weights, streams, params)
    if s.size == 0:
        return None
    moments = CalibrationPrior(
        mean_surprise=float(s.mean()),
        var_surprise=float(s.var()),
        mean_short=float(a.mean()),
        var_short=float(a.var()),
        events=int(s.size),
        streams=len(streams),
        threshold=threshold,
    )
    served = with_prior(weights, moments)
    return replace(
        moments,
        false_alarm_trained=alarm_rate(served, envelope, streams, threshold, new_streams=False),
        false_alarm_new=alarm_rate(served, envelope, streams, threshold, new_streams=True),
    )
