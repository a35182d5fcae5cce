"""A seeded synthetic sensor fleet with injected, labelled anomalies, for training, tests, benchmarks and demos.

Families of normal behaviour: ``seasonal`` (two harmonics plus noise), ``random_walk`` (a walk with momentum
seen through measurement noise), ``bursty`` (a quiet baseline with decaying bursts) and ``regime`` (noisy
levels that switch by a Markov chain). Injected anomaly kinds: ``spike``, ``level_shift``, ``drift``,
``frozen`` (sensor repeats one value) and ``noise_burst``; ``labels`` marks each affected event with the
kind's code (``ANOMALY_CODES``), 0 where normal. The same seed always gives the same fleet.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from stream.data.eventlog import EventRecord
from stream.errors import SyntheticError

FAMILIES: tuple[str, ...] = ("seasonal", "random_walk", "bursty", "regime")
ANOMALY_KINDS: tuple[str, ...] = ("spike", "level_shift", "drift", "frozen", "noise_burst")
ANOMALY_CODES: dict[str, int] = {kind: code for code, kind in enumerate(ANOMALY_KINDS, start=1)}


@dataclass(frozen=True)
class InjectedAnomaly:
    """One anomaly: its kind, the event index range [start, end) it affects, and its size in noise units."""

    kind: str
    start: int
    end: int
    magnitude: float


@dataclass(frozen=True)
class SyntheticStream:
    """One sensor: key, family, event times [T] (seconds), values [T, F], labels [T] (kind code or 0)."""

    key: str
    family: str
    times: np.ndarray
    values: np.ndarray
    labels: np.ndarray
    anomalies: tuple[InjectedAnomaly, ...]


@dataclass(frozen=True)
class SyntheticFleet:
    """A fleet of synthetic streams; ``records()`` yields its events merged in time order."""

    streams: tuple[SyntheticStream, ...]

    def records(self) -> Iterator[EventRecord]:
        """Every event of every stream as an ``EventRecord``, ordered by (time, stream index)."""
        times = np.concatenate([s.times for s in self.streams])
        owner = np.concatenate([np.full(len(s.times), i) for i, s in enumerate(self.streams)])
        position = np.concatenate([np.arange(len(s.times)) for s in self.streams])
        for j in np.lexsort((owner, times)):
            stream = self.streams[owner[j]]
            row = stream.values[position[j]]
            yield EventRecord(stream.key, float(times[j]), tuple(float(v) for v in row))

    @property
    def n_events(self) -> int:
        """Total events over all streams."""
        return sum(len(s.times) for s in self.streams)


def _seasonal(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    period = rng.uniform(24.0, 96.0)
    amplitude = rng.uniform(1.0, 5.0)
    noise = amplitude * rng.uniform(0.03, 0.15)
    k = np.arange(n)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    clean = amplitude * (np.sin(2 * np.pi * k / period + phase[0]) + 0.4 * np.sin(4 * np.pi * k / period + phase[1]))
    return rng.uniform(-10, 10) + clean + noise * rng.standard_normal(n), noise


def _random_walk(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    step = rng.uniform(0.05, 0.3)
    # A walk with momentum that slowly reverts to its level, so it wanders but stays within a sensor's range.
    velocity, position = np.zeros(n), np.zeros(n)
    shocks = step * rng.standard_normal(n)
    for i in range(1, n):
        velocity[i] = 0.9 * velocity[i - 1] + shocks[i]
        position[i] = 0.995 * position[i - 1] + velocity[i]
    noise = step * rng.uniform(0.5, 1.5)
    return rng.uniform(-10, 10) + position + noise * rng.standard_normal(n), noise


def _bursty(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    noise = rng.uniform(0.05, 0.2)
    kicks = np.where(rng.random(n) < rng.uniform(0.01, 0.03), rng.uniform(2.0, 6.0, size=n), 0.0)
    decay = rng.uniform(0.7, 0.9)
    burst = np.zeros(n)
    for i in range(n):
        burst[i] = (burst[i - 1] * decay if i else 0.0) + kicks[i]
    return rng.uniform(0, 5) + burst + noise * rng.standard_normal(n), noise


def _regime(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    levels = rng.uniform(-5, 5, size=3)
    noises = rng.uniform(0.1, 0.5, size=3)
    state = np.zeros(n, dtype=np.int64)
    switches = rng.random(n) < 0.01
    choices = rng.integers(0, 3, size=n)
    for i in range(1, n):
        state[i] = choices[i] if switches[i] else state[i - 1]
    # AR(1) noise around the level: a forecaster that tracks the level beats persistence.
    ar = np.zeros(n)
    shocks = rng.standard_normal(n)
    for i in range(1, n):
        ar[i] = 0.5 * ar[i - 1] + shocks[i]
    return levels[state] + noises[state] * ar, float(noises.mean())


_GENERATORS = {"seasonal": _seasonal, "random_walk": _random_walk, "bursty": _bursty, "regime": _regime}


def _inject(
    rng: np.random.Generator, x: np.ndarray, labels: np.ndarray, kind: str, noise: float, earliest: int = 0
) -> InjectedAnomaly:
    """Apply one anomaly of ``kind`` to ``x`` in place at a free random position (from ``earliest`` on) and
    label it."""
    n = len(x)
    duration = {"spike": 1, "level_shift": 60, "drift": 120, "frozen": 60, "noise_burst": 40}[kind]
    duration = max(1, min(int(duration * rng.uniform(0.5, 1.5)), n // 4, (n - earliest) // 4))
    # Valid starts: after the first fifth (a warm-up the detector needs), clear of other anomalies +- margin.
    margin = 10
    busy = np.concatenate([[0], np.cumsum(labels != 0)])
    starts = np.arange(max(n // 5, earliest), n - duration)
    lo, hi = np.maximum(starts - margin, 0), np.minimum(starts + duration + margin, n)
    free = starts[busy[hi] - busy[lo] == 0]
    if free.size == 0:
        raise SyntheticError("no room left for another anomaly: use fewer anomalies or longer streams")
    start = int(rng.choice(free))
    end = start + duration
    scale = max(noise, 0.5 * float(np.std(x)))
    sign = rng.choice([-1.0, 1.0])
    magnitude = float(rng.uniform(4.0, 8.0))
    if kind == "spike":
        x[start] += sign * magnitude * scale
    elif kind == "level_shift":
        x[start:end] += sign * magnitude * scale
    elif kind == "drift":
        x[start:end] += sign * magnitude * scale * np.linspace(0.0, 1.0, duration)
    elif kind == "frozen":
        x[start:end] = x[start]
    elif kind == "noise_burst":
        x[start:end] += magnitude * noise * rng.standard_normal(duration) * 2.0
    labels[start:end] = ANOMALY_CODES[kind]
    return InjectedAnomaly(kind=kind, start=start, end=end, magnitude=magnitude)


def generate_fleet(
    n_streams: int = 16,
    n_events: int = 2000,
    *,
    families: Sequence[str] = FAMILIES,
    anomaly_kinds: Sequence[str] = ANOMALY_KINDS,
    anomalies_per_stream: int = 2,
    n_features: int = 1,
    interval: float = 60.0,
    jitter: float = 0.0,
    start_time: float = 1_700_000_000.0,
    seed: int = 0,
    clean_prefix: int = 0,
) -> SyntheticFleet:
    """Generate ``n_streams`` streams of ``n_events`` events, cycling through ``families``, fully seeded.

    Events are ``interval`` seconds apart, each moved by up to ``jitter * interval / 2`` (irregular sampling
    stays in order). Every stream gets ``anomalies_per_stream`` non-overlapping anomalies on feature 0, none in its
    first ``clean_prefix`` events (a clean history to train on, as a user's normal logs).
    """
    unknown = sorted(set(families) - set(FAMILIES)) + sorted(set(anomaly_kinds) - set(ANOMALY_KINDS))
    if unknown:
        raise SyntheticError(f"unknown families or anomaly kinds {unknown}; known: {FAMILIES}, {ANOMALY_KINDS}")
    if n_streams < 1 or n_events < 50 or not families:
        raise SyntheticError(f"need n_streams >= 1, n_events >= 50 and a family, got {n_streams}, {n_events}")
    if anomalies_per_stream and not anomaly_kinds:
        raise SyntheticError("anomalies_per_stream > 0 needs at least one anomaly kind")
    if not 0.0 <= jitter < 1.0:
        raise SyntheticError(f"jitter must be in [0, 1), got {jitter}")
    rng = np.random.default_rng(seed)
    streams = []
    for i in range(n_streams):
        family = families[i % len(families)]
        columns, noises = [], []
        for _ in range(n_features):
            column, noise = _GENERATORS[family](rng, n_events)
            columns.append(column)
            noises.append(noise)
        values = np.stack(columns, axis=1)
        labels = np.zeros(n_events, dtype=np.int8)
        anomalies = []
        for _ in range(anomalies_per_stream):
            kind = str(rng.choice(list(anomaly_kinds)))
            anomalies.append(_inject(rng, values[:, 0], labels, kind, noises[0], clean_prefix))
        offsets = rng.uniform(-0.5, 0.5, size=n_events) * jitter * interval
        times = start_time + interval * np.arange(n_events) + offsets
        streams.append(
            SyntheticStream(
                key=f"{family}-{i:04d}",
                family=family,
                times=times,
                values=values,
                labels=labels,
                anomalies=tuple(sorted(anomalies, key=lambda a: a.start)),
            )
        )
    return SyntheticFleet(streams=tuple(streams))
