"""NAB's scoring rules, reimplemented from the published description (Lavin & Ahmad 2015, numenta/NAB sweeper).

Per file: points in the probationary period (first ``min(floor(0.15 n), 750)`` rows) are ignored. A point
inside a labelled window at index ``i`` (window ``[left, right]``, width ``w = right - left + 1``) is worth
``tp * sigma(-(right - i + 1) / w) / sigma(-1)`` where ``sigma(x) = 2 / (1 + exp(5x)) - 1``; only the best
(earliest) detection of a window counts, and an undetected window costs ``-fn``. A detection outside every
window costs ``fp * sigma(|i - prev_right| / (prev_w - 1))`` (``sigma(3) = -1`` caps it; before the first
window it is ``-fp``). One threshold per detector and profile is chosen to maximise the corpus total, which
is then normalised so the null detector scores 0 and the perfect one 100 (NAB's protocol: the threshold is
chosen with the labels). ``threshold=`` scores a fixed threshold instead (a detector's own default, label-free).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stream.errors import EvaluationError

PROBATIONARY = -2
"""Window id of a point in the probationary period (never scored)."""
OUTSIDE = -1
"""Window id of a scorable point outside every labelled window."""


@dataclass(frozen=True)
class Profile:
    """A NAB cost matrix: weights of a true positive, a false positive and a missed window."""

    name: str
    tp: float
    fp: float
    fn: float


PROFILES: tuple[Profile, ...] = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


def scaled_sigmoid(position: float) -> float:
    """NAB's reward at a relative position: 0.987 at a window's left edge (-1), 0 at its right edge, -1 from 3 on."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n_rows: int, probation_fraction: float = 0.15) -> int:
    """Rows at the start of a file that no detector is scored on (NAB: 15 %, at most 750 rows)."""
    return int(min(math.floor(probation_fraction * n_rows), probation_fraction * 5000))


@dataclass(frozen=True)
class PointWeights:
    """Per-point outcome of one file under one profile: the reward if flagged, and which window it belongs to."""

    reward: np.ndarray  # float64 [n]: tp reward inside a window, (negative) fp cost outside
    window: np.ndarray  # int64 [n]: window number in the file, OUTSIDE, or PROBATIONARY
    n_windows: int  # windows that contain at least one scorable point


def point_weights(n_rows: int, windows: Sequence[tuple[int, int]], profile: Profile) -> PointWeights:
    """Reward and window id of every row of a file, given its windows as inclusive (left, right) row indices."""
    reward = np.empty(n_rows, dtype=np.float64)
    window = np.full(n_rows, OUTSIDE, dtype=np.int64)
    ordered = sorted(windows)
    for k, (left, right) in enumerate(ordered):
        if not 0 <= left <= right < n_rows:
            raise EvaluationError(f"window {k} rows [{left}, {right}] lie outside the file's {n_rows} rows")
        if k and left <= ordered[k - 1][1]:
            raise EvaluationError(f"windows {k - 1} and {k} overlap: {ordered[k - 1]} and {(left, right)}")
        window[left : right + 1] = k
    sigmoid = np.vectorize(scaled_sigmoid, otypes=[np.float64])
    reward[:] = -profile.fp  # before the first window
    for k, (left, right) in enumerate(ordered):
        width = float(right - left + 1)
        i = np.arange(left, right + 1)
        reward[left : right + 1] = profile.tp * sigmoid(-(right - i + 1) / width) / _MAX_TP
        stop = ordered[k + 1][0] if k + 1 < len(ordered) else n_rows
        after = np.arange(right + 1, stop)
        position = (after - right) / (width - 1.0) if width > 1 else np.full(after.size, 3.0)
        reward[right + 1 : stop] = profile.fp * sigmoid(position)
    probation = probation_length(n_rows)
    window[:probation] = PROBATIONARY
    n_scorable = len({int(k) for k in window[probation:] if k >= 0})
    return PointWeights(reward=reward, window=window, n_windows=n_scorable)


@dataclass(frozen=True)
class ThresholdScore:
    """The corpus result at one threshold: raw NAB score and the counts behind it."""

    threshold: float
    raw: float
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # flagged points outside every window


@dataclass(frozen=True)
class ProfileResult:
    """A detector's result under one profile at the scored threshold (NAB's best one, or a fixed one), with its
    raw and normalised (null 0, perfect 100) score."""

    profile: str
    best: ThresholdScore
    null_raw: float
    perfect_raw: float

    @property
    def normalised(self) -> float:
        """100 * (raw - null) / (perfect - null)."""
        span = self.perfect_raw - self.null_raw
        return 0.0 if span == 0 else 100.0 * (self.best.raw - self.null_raw) / span


def sweep_thresholds(
    scores: Sequence[np.ndarray], weights: Sequence[PointWeights], profile: Profile, best_only: bool = False
) -> list[ThresholdScore]:
    """Corpus score at every distinct anomaly-score threshold, from 'flag nothing' down to the lowest score
    (with ``best_only``: just the best one, the highest threshold among ties)."""
    if len(scores) != len(weights):
        raise EvaluationError(f"{len(scores)} score arrays for {len(weights)} files")
    all_scores, all_reward, all_window = [], [], []
    window_offset = 0
    for s, w in zip(scores, weights, strict=True):
        if s.shape != w.reward.shape:
            raise EvaluationError(f"a file has {w.reward.size} rows but {s.size} anomaly scores")
        keep = w.window != PROBATIONARY
        all_scores.append(np.asarray(s, dtype=np.float64)[keep])
        all_reward.append(w.reward[keep])
        win = w.window[keep]
        all_window.append(np.where(win >= 0, win + window_offset, OUTSIDE))
        window_offset += int(w.window.max()) + 1 if w.window.size and w.window.max() >= 0 else 0
    flat_scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    reward = np.concatenate(all_reward) if all_reward else np.zeros(0)
    window = np.concatenate(all_window) if all_window else np.zeros(0, np.int64)
    if np.isnan(flat_scores).any():
        raise EvaluationError("anomaly scores contain NaN")
    return _sweep_sorted(flat_scores, reward, window, profile, best_only)


def _sweep_sorted(
    flat_scores: np.ndarray, reward: np.ndarray, window: np.ndarray, profile: Profile, best_only: bool
) -> list[ThresholdScore]:
    """Vectorised sweep: lowering the threshold past a point adds its fp cost, or raises its window's best reward."""
    order = np.argsort(-flat_scores, kind="stable")
    s, r, k = flat_scores[order], reward[order], window[order]
    n_windows = int(np.unique(k[k >= 0]).size)
    inside = k >= 0
    gain = np.where(inside, 0.0, r)  # every flagged point outside a window costs its fp weight
    first = np.zeros(s.size, dtype=bool)
    idx = np.flatnonzero(inside)
    if idx.size:
        # running best reward per window in threshold order: sort by (window, rank), cumulative max per group
        by_window = idx[np.lexsort((idx, k[idx]))]
        groups = k[by_window]
        span = 4.0 * (abs(profile.tp) + abs(profile.fn) + 1.0)
        running = np.maximum.accumulate(r[by_window] + groups * span) - groups * span
        starts = np.ones(by_window.size, dtype=bool)
        starts[1:] = groups[1:] != groups[:-1]
        previous = np.empty_like(running)
        previous[1:] = running[:-1]
        previous[starts] = -profile.fn  # before its first detection a window counts as missed
        gain[by_window] = running - previous
        first[by_window[starts]] = True
    total = -profile.fn * n_windows + np.cumsum(gain)
    detected = np.cumsum(first)
    fps = np.cumsum(~inside)
    level_end = np.ones(s.size, dtype=bool)
    level_end[:-1] = s[1:] != s[:-1]
    results = [ThresholdScore(math.inf, -profile.fn * n_windows, 0, n_windows, 0)]
    levels = np.flatnonzero(level_end)
    if best_only:
        if levels.size and total[levels].max() > results[0].raw:
            j = int(levels[np.argmax(total[levels])])
            return [
                ThresholdScore(
                    float(s[j]), float(total[j]), int(detected[j]), n_windows - int(detected[j]), int(fps[j])
                )
            ]
        return results
    for j in levels.tolist():
        results.append(
            ThresholdScore(float(s[j]), float(total[j]), int(detected[j]), n_windows - int(detected[j]), int(fps[j]))
        )
    return results


def at_threshold(
    scores: Sequence[np.ndarray], weights: Sequence[PointWeights], profile: Profile, threshold: float
) -> ThresholdScore:
    """The corpus result when every point scoring ``>= threshold`` is flagged (no choice made with the labels)."""
    flagged = [r for r in sweep_thresholds(scores, weights, profile) if r.threshold >= threshold]
    return min(flagged, key=lambda r: r.threshold)  # the sweep always holds 'flag nothing' (threshold inf)


def score_profile(
    scores: Sequence[np.ndarray], weights: Sequence[PointWeights], profile: Profile, threshold: float | None = None
) -> ProfileResult:
    """Optimise the threshold over the corpus (``threshold`` None, NAB's rule) or score the given one, and
    normalise against the null and perfect detectors."""
    if threshold is None:
        best = sweep_thresholds(scores, weights, profile, best_only=True)[0]
    else:
        best = at_threshold(scores, weights, profile, threshold)
    null_scores = [np.zeros_like(s, dtype=np.float64) for s in scores]
    null = sweep_thresholds(null_scores, weights, profile, best_only=True)[0].raw
    perfect_scores = [(w.window >= 0).astype(np.float64) for w in weights]
    perfect = sweep_thresholds(perfect_scores, weights, profile, best_only=True)[0].raw
    return ProfileResult(profile=profile.name, best=best, null_raw=null, perfect_raw=perfect)


def score_corpus(
    scores: Mapping[str, np.ndarray],
    windows: Mapping[str, Sequence[tuple[int, int]]],
    profiles: Sequence[Profile] = PROFILES,
    threshold: float | None = None,
) -> dict[str, ProfileResult]:
    """Score a detector's per-file anomaly scores (name -> [n]) under every profile; windows are row indices.
    ``threshold``: None optimises it per profile over these files (NAB's rule), a number scores that one."""
    missing = sorted(set(scores) - set(windows))
    if missing:
        raise EvaluationError(f"no labelled windows entry for {missing[:3]} (use [] for a file without anomalies)")
    names = sorted(scores)
    results = {}
    for profile in profiles:
        weights = [point_weights(len(scores[name]), windows[name], profile) for name in names]
        results[profile.name] = score_profile([scores[name] for name in names], weights, profile, threshold)
    return results
