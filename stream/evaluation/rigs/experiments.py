"""Seeded short experiments on one pump testbed: files of ~1,000-1,300 rows at 1 s, one sustained fault each.

The rig recordings (:mod:`stream.evaluation.rigs.generator`) are long (6000 normal / 7000 test rows), which hides
what a short history does to a detector. Issue 16's hidden multivariate hold-out is a set of short experiment
files: each starts under normal operation and then runs one fault for minutes, often to the file's end. This
generator reuses the rig's physics and faults (:func:`_simulate`, :func:`_physical_faults`,
:func:`_sensor_faults`) on one testbed per seed:

* one **anomaly-free recording** (``n_free`` rows) that visits two operating points of the middle of the range;
* ``experiments`` **files** of 1,000-1,300 rows, each at its own constant operating point drawn over the whole
  range (most are not among the anomaly-free recording's), started warm but not at thermal equilibrium (oil and
  bearing temperature 2-8 % of their rise below it, so they climb slowly through the file: normal drift);
  350-450 normal rows, then one fault of the seven rig kinds, 250-550 rows, which runs to the end of the file in
  a quarter of them (each kind once per testbed before any repeats). Sensor faults (stuck, drift) are sized by
  the file's own normal head, so a drift stays near the sensor's normal range. Slow wanders (tank pressure,
  ambient) are a quarter of the rigs' and sensor noise four times theirs: a short file is one steady run on a
  bench with noisy sensors, so its normal head is representative of its normal rows (as in SKAB-like files).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.evaluation.rigs.generator import (
    FAULTS,
    _healthy,
    _ou,
    _physical_faults,
    _Pump,
    _pump,
    _read,
    _sensor_faults,
    _simulate,
)

EXPERIMENT_ROWS = (1000, 1300)
HEAD_ROWS = (350, 450)  # normal rows before the fault
EXPERIMENT_FAULT_ROWS = (250, 550)
FREE_ROWS = 3000
DT = 1.0
FREE_KEY = "anomaly-free"
WANDER = 0.25  # the slow tank and ambient wanders, relative to the rigs' (a short file is one stable run)
NOISE = 4.0  # sensor noise relative to the rigs' (a test bench's cheap sensors; the rigs' is 2-8 % of a range)


@dataclass
class Experiment:
    """One experiment file: rows at 1 s, per-row labels, its one fault ``(kind, start, end)`` (``end`` exclusive)."""

    name: str
    times: np.ndarray
    values: np.ndarray  # (T, 8)
    labels: np.ndarray  # (T,) 0/1
    events: list[tuple[str, int, int]]
    level: float  # the operating point (load setpoint)


@dataclass
class Testbed:
    """A seed: one pump's anomaly-free recording and its experiment files (the same pump and sensors)."""

    seed: int
    free_times: np.ndarray
    free: np.ndarray  # (n_free, 8)
    free_levels: tuple[float, float]
    experiments: list[Experiment]


def _equilibrium(rng: np.random.Generator, pump: _Pump, level: float, t0: float) -> tuple[float, float]:
    """Oil and bearing temperature the pump settles at, running healthy at ``level`` for 4 hours (coarse steps;
    the thermal lags are exact at any step)."""
    n, dt = 240, 60.0
    true = _simulate(rng, pump, np.full(n, level), dt, t0 - n * dt, _healthy(n))
    return float(true[-1, 5]), float(true[-1, 6])


def _free_setpoint(rng: np.random.Generator, n: int, levels: tuple[float, float]) -> np.ndarray:
    """Two operating points, the second from the middle of the recording on, ramped over ~2 minutes."""
    target = np.where(np.arange(n) < n // 2, levels[0], levels[1])
    u, alpha = np.empty(n), 1.0 - np.exp(-DT / 120.0)
    level = levels[0]
    for i in range(n):
        level += alpha * (target[i] - level)
        u[i] = level
    return u + 0.005 * _ou(rng, n, DT, 300.0)


def _one_fault(rng: np.random.Generator, kind: str, n: int) -> list[tuple[str, int, int]]:
    start = int(rng.integers(HEAD_ROWS[0], HEAD_ROWS[1] + 1))
    length = int(rng.integers(EXPERIMENT_FAULT_ROWS[0], EXPERIMENT_FAULT_ROWS[1] + 1))
    end = n if rng.random() < 0.25 else min(n, start + length)
    return [(kind, start, end)]


def make_testbed(seed: int, experiments: int = 8, n_free: int = FREE_ROWS) -> Testbed:
    """Testbed ``seed``: its anomaly-free recording, then ``experiments`` labelled files (2 hours apart)."""
    fixed = np.random.default_rng([seed, 7, 0])
    rng = np.random.default_rng([seed, 7, 1])
    pump = _pump(fixed)
    t0 = 1.7e9 + float(fixed.uniform(0, 86400))
    free_levels = (float(fixed.uniform(0.5, 0.8)), float(fixed.uniform(0.5, 0.8)))
    u_free = _free_setpoint(rng, n_free, free_levels)
    temps = _equilibrium(rng, pump, free_levels[0], t0 - n_free)
    free_true = _simulate(rng, pump, u_free, DT, t0 - n_free, _healthy(n_free), temps, WANDER)
    gain, offset, noise = _read(fixed, free_true)
    noise = noise * NOISE
    free = free_true * gain + offset + rng.normal(0, 1, free_true.shape) * noise
    kinds = [*rng.permutation(FAULTS).tolist(), *rng.choice(FAULTS, size=max(0, experiments - len(FAULTS))).tolist()]
    out = []
    for k in range(experiments):
        start = t0 + 7200.0 * (k + 1)
        n = int(rng.integers(EXPERIMENT_ROWS[0], EXPERIMENT_ROWS[1] + 1))
        level = float(rng.uniform(0.3, 1.0))
        u = np.clip(level + 0.002 * _ou(rng, n, DT, 300.0), 0.2, 1.05)
        events = _one_fault(rng, str(kinds[k]), n)
        faults = _physical_faults(rng, n, events, u)
        amb = pump.amb_mean + 5 * np.sin(2 * np.pi * start / 86400 + pump.amb_phase)
        oil, bear = _equilibrium(rng, pump, level, start)
        cold = float(rng.uniform(0.02, 0.08))
        temps0 = (oil - cold * (oil - amb), bear - cold * (bear - amb))
        true = _simulate(rng, pump, u, DT, start, faults, temps0, WANDER)
        values = true * gain + offset + rng.normal(0, 1, true.shape) * noise
        head = events[0][1]
        _sensor_faults(rng, values, events, values[:head].std(axis=0))
        labels = np.zeros(n, dtype=np.int64)
        for _, s, e in events:
            labels[s:e] = 1
        name = f"bed{seed}-exp{k:02d}"
        out.append(Experiment(name, start + np.arange(n) * DT, values, labels, events, level))
    free_times = t0 - n_free + np.arange(n_free) * DT
    return Testbed(seed, free_times, free, free_levels, out)
