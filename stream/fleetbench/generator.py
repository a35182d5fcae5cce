"""Seeded, labelled synthetic fleet: single-feature streams and 8-sensor machines driven by shared latent state.

Normal behaviour includes regime changes (operating set-point switches) so that "any change" is not an anomaly.
Anomaly kinds (code): spike 1, contextual 2, level_shift 3, drift 4, frozen 5, variance 6, noise_burst 7,
fault_state 8, broken_corr 9. ``train`` is clean; ``test`` carries the labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS: tuple[str, ...] = (
    "spike",
    "contextual",
    "level_shift",
    "drift",
    "frozen",
    "variance",
    "noise_burst",
    "fault_state",
    "broken_corr",
)
CODES: dict[str, int] = {k: i for i, k in enumerate(KINDS, start=1)}
TUNE_SEEDS: tuple[int, ...] = tuple(range(0, 8))
REPORT_SEEDS: tuple[int, ...] = tuple(range(100, 108))


@dataclass
class FleetUnit:
    """One stream (features=1) or machine (features=8): clean train values, test values, per-event labels."""

    name: str
    train: np.ndarray  # (T_train, F)
    test: np.ndarray  # (T_test, F)
    labels: np.ndarray  # (T_test,) int, 0 = normal, else CODES[kind]
    events: list[tuple[str, int, int]] = field(default_factory=list)


def _latent(rng: np.random.Generator, n: int, period: float) -> np.ndarray:
    t = np.arange(n)
    season = np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3))
    levels = rng.normal(0, 1.0, size=8)
    sw = np.cumsum(rng.random(n) < 1 / 700) % 8  # normal regime changes
    load = levels[sw] + np.convolve(rng.normal(0, 0.15, n), np.ones(20) / 20, "same")
    temp = np.zeros(n)
    for i in range(1, n):  # temperature lags load
        temp[i] = 0.98 * temp[i - 1] + 0.02 * load[i]
    return np.stack([season, load, temp], axis=1)


def _machine(rng: np.random.Generator, n: int, features: int, period: float) -> np.ndarray:
    z = _latent(rng, n, period)
    mix = rng.normal(0, 1, size=(3, features))
    noise = rng.normal(0, 1, size=(n, features)) * rng.uniform(0.05, 0.2, features)
    return z @ mix + noise


def _inject(rng: np.random.Generator, x: np.ndarray, lab: np.ndarray, period: float) -> list[tuple[str, int, int]]:
    n, f = x.shape
    kinds = list(KINDS if f > 1 else KINDS[:-1])
    sd = x.std(axis=0) + 1e-9
    events: list[tuple[str, int, int]] = []
    pos = 300
    for kind in rng.permutation(kinds):
        length = 1 if kind == "spike" else int(rng.integers(50, 500))
        if pos + length + 200 >= n:
            break
        s, e = pos, pos + length
        j = int(rng.integers(f))
        if kind == "spike":
            x[s, j] += rng.choice([-1, 1]) * 5 * sd[j]
        elif kind == "contextual":  # seasonal pattern shifted by half a period: values plausible, timing wrong
            x[s:e, j] = x[s - int(period / 2) : e - int(period / 2), j] if s > period else x[s:e, j][::-1]
        elif kind == "level_shift":
            x[s:e, j] += rng.choice([-1, 1]) * 1.5 * sd[j]
        elif kind == "drift":
            x[s:e, j] += np.linspace(0, 2 * sd[j], e - s)
        elif kind == "frozen":
            x[s:e, j] = x[s, j]
        elif kind == "variance":
            x[s:e, j] += rng.normal(0, 0.5 * sd[j], e - s)
        elif kind == "noise_burst":
            e = s + min(length, 80)
            x[s:e, j] += rng.normal(0, 1.5 * sd[j], e - s)
        elif kind == "fault_state":  # sustained: several sensors at a jointly wrong operating point
            x[s:e] += 0.8 * sd * rng.choice([-1, 1], size=f)
        elif kind == "broken_corr":  # one sensor decoupled from the shared state, same marginal
            x[s:e, j] = rng.permutation(x[s:e, j])
        lab[s:e] = CODES[str(kind)]
        events.append((str(kind), s, e))
        pos = e + int(rng.integers(150, 400))
    return events


def make_fleet(
    seed: int, streams: int = 6, machines: int = 2, n_train: int = 3000, n_test: int = 4000
) -> list[FleetUnit]:
    """The fleet for one seed: ``streams`` single-feature units and ``machines`` 8-sensor units."""
    rng = np.random.default_rng(seed)
    units: list[FleetUnit] = []
    for u in range(streams + machines):
        f = 1 if u < streams else 8
        period = float(rng.uniform(40, 200))
        x = _machine(rng, n_train + n_test, f, period)
        test = x[n_train:].copy()
        lab = np.zeros(n_test, dtype=np.int64)
        ev = _inject(rng, test, lab, period)
        units.append(FleetUnit(f"s{seed}-u{u}", x[:n_train], test, lab, ev))
    return units
