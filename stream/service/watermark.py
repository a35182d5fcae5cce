"""The event-time watermark idle streams are measured against: one event, or a few, cannot move it.

With ``idle_ttl_seconds`` set, a stream is evicted when its last event is older than ``watermark - ttl``. The
watermark used to be the largest event time seen in the partition, so one event with ``time = 1e12`` made every
other stream look idle and evicted them all at each snapshot. ``EventTimeWatermark`` is instead the median of
the last ``window`` event times of the partition (all streams together), never moving backwards: a minority
of far-future (or far-past) times leaves it where the bulk of the streams are. It is undefined (no eviction)
until ``min_samples`` events were seen, so one early outlier after a restart cannot set it either.
"""

from __future__ import annotations

import numpy as np


class EventTimeWatermark:
    """Median of the last ``window`` event times, monotone non-decreasing; -inf until ``min_samples`` were seen."""

    def __init__(self, window: int = 1024, min_samples: int = 32) -> None:
        if window < 1 or not 1 <= min_samples <= window:
            raise ValueError(f"need window >= 1 and 1 <= min_samples <= window, got {window} and {min_samples}")
        self.window = window
        self.min_samples = min_samples
        self._times = np.empty(window, dtype=np.float64)
        self._next = 0  # ring position
        self._count = 0
        self._value = -np.inf

    def observe(self, times: np.ndarray) -> None:
        """Add the event times of one batch (in order; only the last ``window`` count)."""
        times = np.asarray(times, dtype=np.float64)[-self.window :]
        n = len(times)
        if not n:
            return
        end = self._next + n
        if end <= self.window:
            self._times[self._next : end] = times
        else:
            split = self.window - self._next
            self._times[self._next :] = times[:split]
            self._times[: n - split] = times[split:]
        self._next = end % self.window
        self._count = min(self.window, self._count + n)

    def value(self) -> float:
        """The watermark now: the median of the recent event times, never below an earlier value."""
        if self._count >= self.min_samples:
            self._value = max(self._value, float(np.median(self._times[: self._count])))
        return self._value
