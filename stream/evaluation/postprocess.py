"""Causal post-processing used by the NAB detector: range novelty (of the values and of their trailing mean) and
a refractory filter over score series.

Each looks only at earlier points of the same series, so it is valid online (a few state values per stream).
"""

from __future__ import annotations

import numpy as np


def range_excess(values: np.ndarray) -> np.ndarray:
    """How far each value lies outside the range of the earlier values, as a fraction of that range's width.

    0 inside the range, for the first value and while the earlier values are all equal (no width yet).
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros(x.size, dtype=np.float64)
    if x.size < 2:
        return out
    hi = np.maximum.accumulate(x)[:-1]  # range of x[:i], for i >= 1
    lo = np.minimum.accumulate(x)[:-1]
    width = hi - lo
    beyond = np.maximum(np.maximum(x[1:] - hi, lo - x[1:]), 0.0)
    np.divide(beyond, width, out=out[1:], where=width > 0)
    return out


def range_novelty(values: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """1.0 where a value leaves the range seen so far by more than ``tolerance`` times its width, else 0.0.

    Numenta's NAB detector adds the same 'spatial anomaly' rule to HTM; the first point is never novel.
    """
    return (range_excess(values) > tolerance).astype(np.float64)


def graded_novelty(values: np.ndarray, scale: float) -> np.ndarray:
    """Range novelty graded by its size: ``min(1, excess / scale)``, so a value that sets a new extreme by a
    hair (as noise does now and then) counts little and one that leaves the range by ``scale`` of its width
    counts fully."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return np.minimum(range_excess(values) / scale, 1.0)


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and the ``window - 1`` before it; NaN for the first ``window - 1`` points."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = np.asarray(values, dtype=np.float64)
    out = np.full(x.size, np.nan)
    if x.size >= window:  # each window summed on its own: a constant stretch gives exactly one mean value
        out[window - 1 :] = np.lib.stride_tricks.sliding_window_view(x, window).mean(axis=1)
    return out


def level_novelty(values: np.ndarray, window: int, scale: float) -> np.ndarray:
    """:func:`graded_novelty` of the trailing mean over ``window`` points: a sustained level never seen before
    (a downsampled view, quieter than the raw range); 0 until the first full window."""
    mean = trailing_mean(values, window)
    out = np.zeros(mean.size, dtype=np.float64)
    full = mean[window - 1 :]
    if full.size:
        out[window - 1 :] = graded_novelty(full, scale)
    return out


def refractory(scores: np.ndarray, events: int, ceiling_hold: int = 0) -> np.ndarray:
    """Keep a score only where it exceeds the running maximum of earlier scores decaying by ``1 - 1/events``.

    The same rule as ``ScoringParams.refractory_events``; applied here after scores from several sources merge.
    Calibrated scores saturate at 1 (tail probability below the calibration's floor), where a decayed maximum of
    0.999 lets the same saturated alert through again one event later; with ``ceiling_hold = H > 0`` a score of 1
    is kept only if no kept score reached 1 in the previous H events.
    """
    if events < 1:
        raise ValueError(f"events must be >= 1, got {events}")
    if ceiling_hold < 0:
        raise ValueError(f"ceiling_hold must be >= 0 (0 turns it off), got {ceiling_hold}")
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
