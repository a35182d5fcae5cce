"""Event records -> per-stream normalised sequences with a time-based train/validation split. No torch.

Each stream's events are ordered by event time (stable, so ties keep log order) and normalised causally.
The validation split is the last ``validation_fraction`` of each stream's own time range: step ``t``
(forecasting event ``t+1``) is a training step when event ``t+1`` is at or before the cut-off time, a
validation step otherwise. Validation is always scored by running the whole stream from its first event, so
the model's state at the first validation step is what it would be online.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnncore.contract import EventRecord
from rnncore.errors import TrainingError
from rnncore.kernels.preprocess import NormalisedSequence, normalise_sequence
from rnncore.model.config import ModelConfig


@dataclass(frozen=True)
class StreamData:
    """One stream ready for training: its normalised sequence and how many leading steps are for training."""

    key: str
    seq: NormalisedSequence
    train_steps: int

    @property
    def validation_steps(self) -> slice:
        """Steps scored for validation (forecasts of events after the cut-off)."""
        return slice(self.train_steps, len(self.seq) - 1)


@dataclass(frozen=True)
class Dataset:
    """All usable streams plus a summary of what went in (for the artifact's metadata)."""

    streams: tuple[StreamData, ...]
    summary: dict[str, Any]

    @property
    def train_steps(self) -> int:
        """Total training steps (loss terms) over all streams."""
        return sum(s.train_steps for s in self.streams)

    @property
    def validation_steps(self) -> int:
        """Total validation steps over all streams."""
        return sum(len(s.seq) - 1 - s.train_steps for s in self.streams)


def group_by_stream(records: Iterable[EventRecord]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """key -> (times [T], values [T, F]) in event-time order (stable for equal times)."""
    times: dict[str, list[float]] = {}
    values: dict[str, list[tuple[float, ...]]] = {}
    for key, time, row in records:
        times.setdefault(key, []).append(time)
        values.setdefault(key, []).append(row)
    grouped = {}
    for key in times:
        t = np.asarray(times[key], dtype=np.float64)
        order = np.argsort(t, kind="stable")
        grouped[key] = (t[order], np.asarray(values[key], dtype=np.float64)[order])
    return grouped


def split_index(times: np.ndarray, validation_fraction: float) -> int:
    """Number of training steps: steps whose next event is at or before the stream's time cut-off."""
    t0, t1 = float(times[0]), float(times[-1])
    cutoff = t1 - validation_fraction * (t1 - t0)
    events_before = int(np.searchsorted(times, cutoff, side="right"))
    return max(0, min(events_before - 1, len(times) - 1))


def build_dataset(
    records: Iterable[EventRecord], config: ModelConfig, validation_fraction: float = 0.2, min_events: int = 8
) -> Dataset:
    """Group, order, normalise and split; streams with fewer than ``min_events`` events are left out (counted)."""
    if not 0.0 <= validation_fraction < 1.0:
        raise TrainingError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    grouped = group_by_stream(records)
    streams, too_short = [], 0
    for key in sorted(grouped):
        times, values = grouped[key]
        if values.shape[1] != config.n_features:
            raise TrainingError(f"stream {key!r} has {values.shape[1]} values per event, model has {config.n_features}")
        if len(times) < max(min_events, 2):
            too_short += 1
            continue
        seq = normalise_sequence(values, times, config)
        streams.append(StreamData(key=key, seq=seq, train_steps=split_index(times, validation_fraction)))
    if not streams:
        raise TrainingError(f"no stream has at least {max(min_events, 2)} events ({too_short} streams too short)")
    all_times = np.concatenate([s.seq.times for s in streams])
    dataset = Dataset(streams=tuple(streams), summary={})
    dataset.summary.update(
        streams=len(streams),
        streams_too_short=too_short,
        events=int(all_times.size),
        train_steps=dataset.train_steps,
        validation_steps=dataset.validation_steps,
        validation_fraction=validation_fraction,
        first_time=float(all_times.min()),
        last_time=float(all_times.max()),
    )
    return dataset
