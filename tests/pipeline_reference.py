"""Whole-array reference of the seasonal scoring pipeline (``rnncore.stages.pipeline.ScoringPipeline``), the slow
and obvious form the online stages are tested against. Nothing under ``rnncore/`` or ``stream/`` imports this.

It was the NAB-side detector of issue 6 (``stream/evaluation/rnnwatch_nab.py``, ``seasonal.py``, ``postprocess.py``,
constants chosen on NAB); ``rnnwatch bench nab`` now scores the product path, so these batch stages live on only
as the oracle of ``rnnwatch score --pipeline seasonal``:

* :func:`seasonal_residual` / :func:`seasonal_surprise`: ``rnncore.stages.seasonality``;
* :func:`merge_and_filter` (graded range novelty of the value and of its trailing mean, refractory filter):
  ``rnncore.stages.novelty``;
* :func:`batch_scores`: the whole pipeline, stage by stage over whole series.
Each output at a point uses only earlier points of the same series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rnncore.calibration import ScoringParams, calibrate, score_schema
from rnncore.detector import Detector
from rnncore.model.weights import ModelWeights
from rnncore.stages.novelty import NoveltyParams
from rnncore.stages.pipeline import PipelineSettings
from rnncore.stages.seasonality import SeasonalityParams

HOUR = 3600.0
DAY_SLOTS = 24
WEEK_SLOTS = 168
_GAUSSIAN_SPREAD = math.sqrt(math.pi / 2.0)  # standard deviation / mean absolute deviation of a Gaussian


class Series(Protocol):
    """A named single-value series (``stream.evaluation.nab_data.NabFile``)."""

    name: str

    @property
    def seconds(self) -> np.ndarray: ...

    @property
    def values(self) -> np.ndarray: ...


def _slots(seconds: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hours = np.floor(np.asarray(seconds, dtype=np.float64) / HOUR).astype(np.int64)
    assert hours.shape == np.shape(values)
    return hours % DAY_SLOTS, hours % WEEK_SLOTS


class _SlotStats:
    """Running mean and mean absolute deviation (from the mean before the update) per slot, weight
    ``max(1/count, alpha)``."""

    def __init__(self, slots: int, alpha: float) -> None:
        self.alpha = alpha
        self.count = [0] * slots
        self.mean = [0.0] * slots
        self.dev = [0.0] * slots

    def update(self, slot: int, x: float) -> None:
        self.count[slot] += 1
        a = max(1.0 / self.count[slot], self.alpha)
        d = x - self.mean[slot]
        self.mean[slot] += a * d
        self.dev[slot] += a * (abs(d) - self.dev[slot])


def seasonal_residual(seconds: np.ndarray, values: np.ndarray, p: SeasonalityParams) -> np.ndarray:
    """Each value minus its causal expectation (hour-of-week, else hour-of-day slot mean, else running mean)."""
    day, week = _slots(seconds, values)
    days, weeks = _SlotStats(DAY_SLOTS, p.alpha), _SlotStats(WEEK_SLOTS, p.alpha)
    out = np.zeros(len(day), dtype=np.float64)
    total = 0.0
    for i, (x, d, w) in enumerate(
        zip(np.asarray(values, np.float64).tolist(), day.tolist(), week.tolist(), strict=True)
    ):
        if weeks.count[w] >= p.min_count:
            expected = weeks.mean[w]
        elif days.count[d] >= p.min_count:
            expected = days.mean[d]
        else:
            expected = total / i if i else x
        out[i] = x - expected
        total += x
        days.update(d, x)
        weeks.update(w, x)
    return out


def seasonal_surprise(seconds: np.ndarray, values: np.ndarray, p: SeasonalityParams) -> np.ndarray:
    """``max(|z|)`` of each value against its warm hour-of-day and hour-of-week slots; NaN where none is warm."""
    day, week = _slots(seconds, values)
    days, weeks = _SlotStats(DAY_SLOTS, p.alpha), _SlotStats(WEEK_SLOTS, p.alpha)
    out = np.full(len(day), np.nan, dtype=np.float64)
    mean = var = 0.0
    for i, (x, d, w) in enumerate(
        zip(np.asarray(values, np.float64).tolist(), day.tolist(), week.tolist(), strict=True)
    ):
        a = max(1.0 / (i + 1), p.global_alpha)
        delta = x - mean
        mean += a * delta
        var = (1.0 - a) * (var + a * delta * delta)
        floor = math.sqrt(p.variance_floor * var + 1e-12)
        z = [
            abs(x - stats.mean[s]) / (_GAUSSIAN_SPREAD * stats.dev[s] + floor)
            for stats, s in ((days, d), (weeks, w))
            if stats.count[s] >= p.min_count
        ]
        if z:
            out[i] = max(z)
        days.update(d, x)
        weeks.update(w, x)
    return out


def range_excess(values: np.ndarray) -> np.ndarray:
    """How far each value lies outside the range of the earlier values, as a fraction of that range's width."""
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros(x.size, dtype=np.float64)
    if x.size < 2:
        return out
    hi = np.maximum.accumulate(x)[:-1]
    lo = np.minimum.accumulate(x)[:-1]
    width = hi - lo
    beyond = np.maximum(np.maximum(x[1:] - hi, lo - x[1:]), 0.0)
    np.divide(beyond, width, out=out[1:], where=width > 0)
    return out


def graded_novelty(values: np.ndarray, scale: float) -> np.ndarray:
    """Range novelty graded by its size: ``min(1, excess / scale)``."""
    return np.minimum(range_excess(values) / scale, 1.0)


def level_novelty(values: np.ndarray, window: int, scale: float) -> np.ndarray:
    """:func:`graded_novelty` of the trailing mean over ``window`` points; 0 until the first full window."""
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros(x.size, dtype=np.float64)
    if x.size >= window:  # each window summed on its own: a constant stretch gives exactly one mean value
        mean = np.lib.stride_tricks.sliding_window_view(x, window).mean(axis=1)
        out[window - 1 :] = graded_novelty(mean, scale)
    return out


def refractory(scores: np.ndarray, events: int, ceiling_hold: int = 0) -> np.ndarray:
    """Keep a score only where it exceeds the running maximum of earlier scores decaying by ``1 - 1/events``;
    a score of 1 only if no kept score reached 1 in the previous ``ceiling_hold`` events."""
    decay = 1.0 - 1.0 / events
    out = np.zeros(len(scores), dtype=np.float64)
    recent = 0.0
    last_ceiling = -ceiling_hold - 1
    for i, s in enumerate(np.asarray(scores, dtype=np.float64).tolist()):
        at_ceiling = s >= 1.0
        if s > recent and not (at_ceiling and i - last_ceiling <= ceiling_hold):
            out[i] = s
            if at_ceiling:
                last_ceiling = i
        recent = max(recent * decay, s)
    return out


def calibrated_series(surprise: np.ndarray, params: ScoringParams) -> np.ndarray:
    """One series of surprises (NaN: none yet) through the Detector's online calibration, as one stream."""
    columns = {name: np.zeros((1, *shape), dtype=dtype) for name, (shape, dtype) in score_schema(params).items()}
    scores = np.zeros(surprise.size, dtype=np.float32)
    rows = np.zeros(surprise.size, dtype=np.int64)
    status = np.zeros(surprise.size, dtype=np.int8)
    calibrate(params, columns, rows, np.asarray(surprise, dtype=np.float32), status, scores)
    return scores.astype(np.float64)


def detector_scores(
    files: Sequence[Series], weights: ModelWeights, scoring: ScoringParams, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Stream every file's ``inputs`` through one Detector, one stream per file; a step carries each file's i-th
    event."""
    detector = Detector(weights, max_streams=max(len(files), 1), scoring=scoring)
    longest = max((f.values.size for f in files), default=0)
    scores = {f.name: np.zeros(f.values.size, dtype=np.float64) for f in files}
    for i in range(longest):
        live = [f for f in files if i < f.values.size]
        times = np.array([f.seconds[i] for f in live])
        values = np.array([inputs[f.name][i] for f in live], dtype=np.float32)
        result = detector.step([f.name for f in live], times, values)
        for f, score in zip(live, result.scores.tolist(), strict=True):
            scores[f.name][i] = score
    return scores


def merge_and_filter(
    files: Sequence[Series], scores: dict[str, np.ndarray], novelty: NoveltyParams
) -> dict[str, np.ndarray]:
    """Scores merged with the graded novelty of the trailing level and of the value (when on), then the
    refractory filter (when > 0): ``max(s, g * (floor + (1 - floor) * s))`` per novelty ``g``."""
    merged = {}
    floor = novelty.novelty_floor
    for f in files:
        s = scores[f.name]
        if novelty.range_novelty:
            novelties = [graded_novelty(f.values, novelty.novelty_scale)]
            if novelty.level_window > 0:
                novelties.insert(0, level_novelty(f.values, novelty.level_window, novelty.level_scale))
            for novel in novelties:
                s = np.maximum(s, novel * (floor + (1.0 - floor) * s))
        if novelty.refractory_events > 0:
            s = refractory(s, novelty.refractory_events, novelty.ceiling_hold)
        merged[f.name] = s
    return merged


def batch_scores(files: Sequence[Series], weights: ModelWeights, settings: PipelineSettings) -> dict[str, np.ndarray]:
    """The whole pipeline stage by stage over whole files: the Detector on the seasonal residual, ``max(weight *
    its score, calibrated seasonal surprise)``, then :func:`merge_and_filter`."""
    season = settings.seasonality
    inputs = {f.name: seasonal_residual(f.seconds, f.values, season) for f in files}
    scores = detector_scores(files, weights, settings.detector_scoring, inputs)
    seasonal = {
        f.name: calibrated_series(seasonal_surprise(f.seconds, f.values, season), settings.seasonal_scoring)
        for f in files
    }
    merged = {name: np.maximum(settings.detector_weight * s, seasonal[name]) for name, s in scores.items()}
    return merge_and_filter(files, merged, settings.novelty)
