"""A tiny pure-Python detector with the service's Detector interface, for tests of the service's own logic.

State per stream: event count, running sum and last time; the score is a deterministic function of the
state before the event, so replays, restores and duplicates are all visible in the scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson


@dataclass(frozen=True)
class FakeResult:
    scores: np.ndarray
    nll: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    status: np.ndarray
    contributions: np.ndarray | None = None  # as StepResult: none for the fake's streams
    rarity: np.ndarray | None = None  # as StepResult: the codec derives it from the scores


class FakeTable:
    row_nbytes = 24

    def __init__(self, state: dict[str, list[float]]) -> None:
        self._state = state

    def keys(self) -> list[str]:
        return list(self._state)


class FakeDetector:
    """count/sum/last_time per key; ``max_streams`` overflow gives status 2; key "bad" gives status 3."""

    def __init__(self, max_streams: int = 1000) -> None:
        self.max_streams = max_streams
        self.state: dict[str, list[float]] = {}
        self.table = FakeTable(self.state)

    @property
    def n_streams(self) -> int:
        return len(self.state)

    @property
    def state_bytes(self) -> int:
        return 24 * len(self.state)

    @property
    def model_version(self) -> str | None:
        return "fake-1"

    def step(self, keys: Sequence[object], times: Any, values: Any) -> FakeResult:
        B = len(keys)
        values = np.asarray(values, dtype=np.float32).reshape(B, -1) if B else np.empty((0, 1), np.float32)
        scores = np.zeros(B, dtype=np.float32)
        nll = np.full(B, np.nan, dtype=np.float32)
        mean = np.full((B, values.shape[1]), np.nan, dtype=np.float32)
        status = np.zeros(B, dtype=np.int8)
        for i, key in enumerate(keys):
            if key == "bad":
                status[i] = 3
                continue
            row = self.state.get(str(key))
            if row is None:
                if len(self.state) >= self.max_streams:
                    status[i] = 2
                    continue
                row = self.state[str(key)] = [0.0, 0.0, 0.0]
            count, total, _ = row
            previous_mean = total / count if count else 0.0
            scores[i] = min(1.0, abs(float(values[i, 0]) - previous_mean) / 10.0)
            if count:
                nll[i] = count
            row[0], row[1], row[2] = count + 1, total + float(values[i, 0]), float(times[i])
            mean[i] = row[1] / row[0]
        return FakeResult(scores, nll, mean, np.ones_like(mean), status)

    def snapshot(self, keys: Iterable[str] | None = None) -> bytes:
        chosen = list(self.state) if keys is None else [k for k in keys if k in self.state]
        return orjson.dumps({k: self.state[k] for k in chosen})

    def restore(self, data: bytes) -> int:
        loaded = orjson.loads(data)
        for key, row in loaded.items():
            self.state[key] = list(row)
        return len(loaded)

    def evict_idle(self, now: float, ttl_seconds: float | None = None) -> int:
        idle = [k for k, row in self.state.items() if row[2] < now - (ttl_seconds or 0.0)]
        for key in idle:
            del self.state[key]
        return len(idle)

    def reload(self, weights: Any) -> None:
        """The fake has no model to swap."""
