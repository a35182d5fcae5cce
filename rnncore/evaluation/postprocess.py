"""Causal post-processing used by the NAB detector: range novelty and a refractory filter over score series.

Both look only at earlier points of the same series, so they are valid online (one state value each).
"""

from __future__ import annotations

import numpy as np


def range_novelty(values: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """1.0 where a value leaves the range seen so far by more than ``tolerance`` times its width, else 0.0.

    Numenta's NAB detector adds the same 'spatial anomaly' rule to HTM; the first point is never novel.
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros(x.size, dtype=np.float64)
    if not x.size:
        return out
    lo = hi = float(x[0])
    for i, v in enumerate(x.tolist()):
        margin = (hi - lo) * tolerance
        if hi > lo and (v > hi + margin or v < lo - margin):
            out[i] = 1.0
        lo, hi = min(lo, v), max(hi, v)
    return out


def refractory(scores: np.ndarray, events: int) -> np.ndarray:
    """Keep a score only where it exceeds the running maximum of earlier scores decaying by ``1 - 1/events``.

    The same rule as ``ScoringParams.refractory_events``; applied here after scores from several sources merge.
    """
    if events < 1:
        raise ValueError(f"events must be >= 1, got {events}")
    decay = 1.0 - 1.0 / events
    out = np.zeros(len(scores), dtype=np.float64)
    recent = 0.0
    for i, s in enumerate(np.asarray(scores, dtype=np.float64).tolist()):
        out[i] = s if s > recent else 0.0
        recent = max(recent * decay, s)
    return out
