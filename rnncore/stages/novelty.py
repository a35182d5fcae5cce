"""Online per-stream merge of scores with graded range novelty, then a refractory filter, one event at a time.

For each accepted event of a stream, with ``s`` the incoming score (already merged from its sources):

1. level novelty (``level_window = W > 0``): the mean of the last W values (summed in numpy's pairwise order, so
   it equals the batch reference bit for bit) against the range of the earlier such means; value novelty: the
   value against the range of the earlier values. Each is ``min(1, excess / scale)`` with ``excess`` how far it
   leaves that range as a fraction of the range's width (0 inside it, for the first point and while the range
   has no width); each novelty ``v`` lifts the score to ``max(s, v * (floor + (1 - floor) * s))``;
2. refractory (``refractory_events = K > 0``): the score is kept only if it exceeds the running maximum of
   earlier scores decaying by ``1 - 1/K`` per event, and a saturated score (1) only if no kept score reached 1
   in the previous ``ceiling_hold`` events; else it is reported as 0.

The online form of the batch reference in ``tests/pipeline_reference.py`` (``graded_novelty``, ``level_novelty``,
``refractory``); tests hold them equal. State: :func:`novelty_schema`, ``8 * (8 + W)`` bytes per stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from rnncore.errors import ConfigError

__all__ = ["NoveltyParams", "novelty_schema", "novelty_step"]

SCALAR_COLUMN = "novelty_scalars"  # float64 [8], see the offsets below
RING_COLUMN = "novelty_ring"  # float64 [W]: the last W values, event n at n % W
_N, _HI, _LO, _LEVEL_HI, _LEVEL_LO, _RECENT, _CEILING, _SPARE = range(8)  # _CEILING: last kept 1's event + 1
MAX_LEVEL_WINDOW = 128  # numpy sums up to 128 values in one unrolled block; longer windows split recursively


@dataclass(frozen=True, kw_only=True)
class NoveltyParams:
    """Range novelty and refractory filter; defaults are the ones chosen on NAB."""

    range_novelty: bool = True
    novelty_scale: float = 0.02  # a new extreme counts fully once it leaves the range by this fraction of it
    level_window: int = 20  # trailing mean whose range novelty is merged too (0: off)
    level_scale: float = 0.1  # ... counting fully once it leaves its range by this fraction
    novelty_floor: float = 0.8  # a fully novel point scores novelty_floor + (1 - novelty_floor) * score
    refractory_events: int = 1000  # 0: off
    ceiling_hold: int = 300  # a saturated score (1) is kept only if no kept 1 in this many events before (0: off)

    def __post_init__(self) -> None:
        if not self.novelty_scale > 0 or not self.level_scale > 0:
            raise ConfigError(
                f"novelty_scale and level_scale must be > 0, got {self.novelty_scale}, {self.level_scale}"
            )
        if not 0 <= self.level_window <= MAX_LEVEL_WINDOW:
            raise ConfigError(
                f"level_window must be in [0, {MAX_LEVEL_WINDOW}] (0 turns it off), got {self.level_window}"
            )
        if not 0.0 <= self.novelty_floor <= 1.0:
            raise ConfigError(f"novelty_floor must be in [0, 1], got {self.novelty_floor}")
        if self.refractory_events < 0 or self.ceiling_hold < 0:
            raise ConfigError(
                f"refractory_events and ceiling_hold must be >= 0 (0 turns them off), "
                f"got {self.refractory_events}, {self.ceiling_hold}"
            )


def novelty_schema(params: NoveltyParams) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Per-stream columns, ``{name: (shape after the row axis, dtype)}``; zeros = a fresh stream."""
    return {
        SCALAR_COLUMN: ((8,), np.dtype(np.float64)),
        RING_COLUMN: ((max(params.level_window, 1),), np.dtype(np.float64)),
    }


@njit(cache=True, nogil=True)
def _window_mean(ring: np.ndarray, r: int, start: int, W: int) -> float:
    """Mean of ``ring[r]`` read from ``start`` (oldest) round the ring, summed as numpy's pairwise_sum does."""
    if W < 8:
        total = 0.0
        for j in range(W):
            total += ring[r, (start + j) % W]
        return total / W
    acc = np.empty(8, dtype=np.float64)
    for j in range(8):
        acc[j] = ring[r, (start + j) % W]
    i = 8
    while i < W - W % 8:
        for j in range(8):
            acc[j] += ring[r, (start + i + j) % W]
        i += 8
    total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    while i < W:
        total += ring[r, (start + i) % W]
        i += 1
    return total / W


@njit(cache=True, nogil=True)
def _graded(x: float, first: bool, hi: float, lo: float, scale: float) -> float:
    if first:
        return 0.0
    width = hi - lo
    if not width > 0:
        return 0.0
    beyond = max(max(x - hi, lo - x), 0.0)
    return min(beyond / width / scale, 1.0)


@njit(cache=True, nogil=True)
def _novelty_kernel(
    scalars: np.ndarray,
    ring: np.ndarray,
    rows: np.ndarray,
    values: np.ndarray,
    scores: np.ndarray,
    accepted: np.ndarray,
    out: np.ndarray,
    range_novelty: bool,
    novelty_scale: float,
    level_window: int,
    level_scale: float,
    novelty_floor: float,
    refractory_events: int,
    ceiling_hold: int,
) -> None:
    lift = 1.0 - novelty_floor
    decay = 1.0 - 1.0 / refractory_events if refractory_events > 0 else 0.0
    for i in range(rows.shape[0]):
        if not accepted[i]:
            out[i] = 0.0
            continue
        r = rows[i]
        x = values[i]
        s = scores[i]
        n = scalars[r, _N]
        if range_novelty:
            if level_window > 0:
                W = level_window
                ring[r, int(n) % W] = x
                if n >= W - 1:
                    m = _window_mean(ring, r, int(n + 1.0) % W, W)
                    first = n == W - 1
                    novel = _graded(m, first, scalars[r, _LEVEL_HI], scalars[r, _LEVEL_LO], level_scale)
                    s = max(s, novel * (novelty_floor + lift * s))
                    scalars[r, _LEVEL_HI] = m if first else max(scalars[r, _LEVEL_HI], m)
                    scalars[r, _LEVEL_LO] = m if first else min(scalars[r, _LEVEL_LO], m)
            first = n == 0
            novel = _graded(x, first, scalars[r, _HI], scalars[r, _LO], novelty_scale)
            s = max(s, novel * (novelty_floor + lift * s))
            scalars[r, _HI] = x if first else max(scalars[r, _HI], x)
            scalars[r, _LO] = x if first else min(scalars[r, _LO], x)
        if refractory_events > 0:
            recent = scalars[r, _RECENT]
            at_ceiling = s >= 1.0
            held = scalars[r, _CEILING] > 0 and n - (scalars[r, _CEILING] - 1.0) <= ceiling_hold
            if s > recent and not (at_ceiling and held):
                out[i] = s
                if at_ceiling:
                    scalars[r, _CEILING] = n + 1.0
            else:
                out[i] = 0.0
            scalars[r, _RECENT] = max(recent * decay, s)
        else:
            out[i] = s
        scalars[r, _N] = n + 1.0


def novelty_step(
    params: NoveltyParams,
    columns: dict[str, np.ndarray],
    rows: np.ndarray,
    values: np.ndarray,
    scores: np.ndarray,
    accepted: np.ndarray,
) -> np.ndarray:
    """Final scores (float64 [B]) of a batch in arrival order, advancing the accepted events' rows; rejected
    events (``accepted`` False) score 0 and change nothing."""
    out = np.empty(rows.shape[0], dtype=np.float64)
    _novelty_kernel(
        columns[SCALAR_COLUMN], columns[RING_COLUMN], np.ascontiguousarray(rows, dtype=np.int64),
        np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(scores, dtype=np.float64),
        np.ascontiguousarray(accepted, dtype=np.bool_), out, params.range_novelty, params.novelty_scale,
        params.level_window, params.level_scale, params.novelty_floor, params.refractory_events, params.ceiling_hold,
    )  # fmt: skip
    return out
