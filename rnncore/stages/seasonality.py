"""Online per-stream daily/weekly profile: seasonal residual and seasonal surprise, one event at a time.

Each stream keeps a running (mean, mean absolute deviation) per hour-of-day slot (24) and hour-of-week slot
(168), weighted ``max(1/count, alpha)``, plus a running sum (for the residual's fallback) and a series-wide
exponentially weighted mean and variance (the spread floor). For each accepted event, before it updates its
slots (so an output depends only on earlier events of its stream):

* residual: the value minus its expected value (hour-of-week slot mean once that slot has ``min_count`` points,
  else the hour-of-day slot mean, else the running mean of the earlier values, else the value itself);
* surprise: ``max |x - slot mean| / (sqrt(pi/2) * slot deviation + sqrt(variance_floor * series variance))``
  over the warm slots, NaN when neither is warm.

The same arithmetic, in the same order and in float64, as the batch reference
``seasonal_residual`` / ``seasonal_surprise`` in ``tests/pipeline_reference.py`` (tests hold them equal).
State: :func:`seasonality_schema`, 3,872 bytes per stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from rnncore.errors import ConfigError

__all__ = ["SeasonalityParams", "seasonality_schema", "seasonality_step"]

HOUR = 3600.0
DAY_SLOTS = 24
WEEK_SLOTS = 168
SLOTS = DAY_SLOTS + WEEK_SLOTS  # day slots first, then week slots
GAUSSIAN_SPREAD = math.sqrt(math.pi / 2.0)  # standard deviation / mean absolute deviation of a Gaussian

COUNT_COLUMN = "season_count"  # int32 [SLOTS]: points per slot
SLOT_COLUMN = "season_slots"  # float64 [SLOTS, 2]: slot mean, mean absolute deviation
SCALAR_COLUMN = "season_scalars"  # float64 [4]: events seen, their sum, series mean, series variance
_N, _TOTAL, _GMEAN, _GVAR = 0, 1, 2, 3


@dataclass(frozen=True, kw_only=True)
class SeasonalityParams:
    """Slot statistics of the seasonal profile; defaults are the ones chosen on NAB (a slot trusted after 15
    points: for 5-minute data a little over one visit of its hour)."""

    alpha: float = 0.1  # slowest exponential weight of a slot's mean/deviation (about the last 10 cycles)
    min_count: int = 15  # points a slot must have seen before its statistics are used
    global_alpha: float = 1e-3  # slowest weight of the series-wide variance
    variance_floor: float = 0.001  # sqrt(this * series-wide variance) is added to a slot's spread

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1 or not 0 < self.global_alpha <= 1:
            raise ConfigError(f"alpha and global_alpha must be in (0, 1], got {self.alpha}, {self.global_alpha}")
        if self.min_count < 1:
            raise ConfigError(f"min_count must be >= 1, got {self.min_count}")
        if not self.variance_floor > 0:
            raise ConfigError(f"variance_floor must be > 0, got {self.variance_floor}")


def seasonality_schema() -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Per-stream columns of the profile, ``{name: (shape after the row axis, dtype)}``; zeros = a fresh stream."""
    return {
        COUNT_COLUMN: ((SLOTS,), np.dtype(np.int32)),
        SLOT_COLUMN: ((SLOTS, 2), np.dtype(np.float64)),
        SCALAR_COLUMN: ((4,), np.dtype(np.float64)),
    }


@njit(cache=True, nogil=True)
def _season_kernel(
    count: np.ndarray,
    slots: np.ndarray,
    scalars: np.ndarray,
    rows: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    accepted: np.ndarray,
    residual: np.ndarray,
    surprise: np.ndarray,
    alpha: float,
    min_count: int,
    global_alpha: float,
    variance_floor: float,
) -> None:
    for i in range(rows.shape[0]):
        if not accepted[i]:
            residual[i] = values[i]
            surprise[i] = np.nan
            continue
        r = rows[i]
        x = values[i]
        hours = np.int64(math.floor(times[i] / HOUR))
        d = hours % DAY_SLOTS
        w = DAY_SLOTS + hours % WEEK_SLOTS
        n = scalars[r, _N]
        if count[r, w] >= min_count:
            expected = slots[r, w, 0]
        elif count[r, d] >= min_count:
            expected = slots[r, d, 0]
        elif n > 0:
            expected = scalars[r, _TOTAL] / n
        else:
            expected = x
        residual[i] = x - expected
        a = max(1.0 / (n + 1.0), global_alpha)
        delta = x - scalars[r, _GMEAN]
        scalars[r, _GMEAN] += a * delta
        var = (1.0 - a) * (scalars[r, _GVAR] + a * delta * delta)
        scalars[r, _GVAR] = var
        floor = math.sqrt(variance_floor * var + 1e-12)
        z = np.nan
        for s in (d, w):
            if count[r, s] >= min_count:
                zs = abs(x - slots[r, s, 0]) / (GAUSSIAN_SPREAD * slots[r, s, 1] + floor)
                if not zs <= z:  # the first warm slot, or a larger z
                    z = zs
        surprise[i] = z
        scalars[r, _TOTAL] += x
        scalars[r, _N] = n + 1.0
        for s in (d, w):
            c = count[r, s] + 1
            count[r, s] = c
            a = max(1.0 / c, alpha)
            dd = x - slots[r, s, 0]
            slots[r, s, 0] += a * dd
            slots[r, s, 1] += a * (abs(dd) - slots[r, s, 1])


def seasonality_step(
    params: SeasonalityParams,
    columns: dict[str, np.ndarray],
    rows: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    accepted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Residual and surprise (float64 [B]) of a batch in arrival order, advancing the accepted events' rows.

    Rejected events (``accepted`` False) change nothing; their residual is the value and their surprise NaN."""
    B = rows.shape[0]
    residual = np.empty(B, dtype=np.float64)
    surprise = np.empty(B, dtype=np.float64)
    _season_kernel(
        columns[COUNT_COLUMN], columns[SLOT_COLUMN], columns[SCALAR_COLUMN],
        np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(times, dtype=np.float64),
        np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(accepted, dtype=np.bool_),
        residual, surprise, params.alpha, params.min_count, params.global_alpha, params.variance_floor,
    )  # fmt: skip
    return residual, surprise
