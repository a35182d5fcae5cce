"""Seeded, labelled synthetic fleet: single-feature streams and 8-sensor machines driven by shared latent state.

Signal families (``FleetUnit.family``): ``latent`` (season, load regimes, lagged temperature), ``seasonal``
(harmonics of a wandering period under an envelope), ``ar`` (AR(2) quasi-cycles over a mean-reverting random
walk, heavy-tailed noise), ``regime`` (Markov-switching modes with ramps and brief normal bursts) and, for
machines, ``rig`` (8 sensors mixing shared factors with per-sensor lags and first-order responses). A share of
units is sampled irregularly (exponential gaps). Normal behaviour thus includes regime changes, bursts, quasi-
cycles and wandering periods, all things a naive detector flags, so that "any change" is not an anomaly.
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


SINGLE_FAMILIES: tuple[str, ...] = ("latent", "seasonal", "ar", "regime")
MACHINE_FAMILIES: tuple[str, ...] = ("latent", "rig")
IRREGULAR_SHARE = 0.25


@dataclass
class FleetUnit:
    """One stream (features=1) or machine (features=8): clean train values, test values, per-event labels.

    ``train_times``/``test_times`` are event times in seconds (1 s apart, or exponential gaps of mean 1 s for
    an irregularly sampled unit); the test times continue after the train times. ``touched[i]``: the features
    event ``i`` changed (one for every kind but ``fault_state``, which moves all of them). ``clean_test``: the
    test rows before the faults were injected (normal data to measure the real false-alarm rate on).
    """

    name: str
    train: np.ndarray  # (T_train, F)
    test: np.ndarray  # (T_test, F)
    labels: np.ndarray  # (T_test,) int, 0 = normal, else CODES[kind]
    events: list[tuple[str, int, int]] = field(default_factory=list)
    family: str = "latent"
    train_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    test_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    touched: list[tuple[int, ...]] = field(default_factory=list)
    clean_test: np.ndarray = field(default_factory=lambda: np.empty((0, 1)))


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


def _seasonal(rng: np.random.Generator, n: int, period: float) -> np.ndarray:
    """Harmonics of a period that itself wanders by +-15 %, under a slow amplitude envelope (a weekly cycle)."""
    t = np.arange(n)
    wander = 1 + 0.15 * np.sin(2 * np.pi * t / rng.uniform(2000, 6000) + rng.uniform(0, 6.3))
    phase = 2 * np.pi * np.cumsum(1 / (period * wander)) + rng.uniform(0, 6.3)
    amps = rng.uniform(0.2, 1.0, 4) / np.arange(1, 5)
    shifts = rng.uniform(0, 6.3, 4)
    x = sum(a * np.sin((k + 1) * phase + s) for k, (a, s) in enumerate(zip(amps, shifts, strict=True)))
    envelope = 1 + 0.3 * np.sin(2 * np.pi * t / (period * rng.uniform(5, 9)))
    return np.asarray(envelope * x + rng.normal(0, rng.uniform(0.03, 0.15), n))


def _autoregressive(rng: np.random.Generator, n: int) -> np.ndarray:
    """AR(2) with near-unit roots (quasi-cycles) over a mean-reverting random walk, with heavy-tailed noise."""
    r, w = rng.uniform(0.9, 0.98), 2 * np.pi / rng.uniform(20, 150)  # complex roots r * exp(+-iw)
    phi1, phi2 = 2 * r * np.cos(w), -(r**2)
    eps = rng.standard_t(4, n) * 0.1
    ar, level = np.zeros(n), np.zeros(n)
    for i in range(2, n):
        ar[i] = phi1 * ar[i - 1] + phi2 * ar[i - 2] + eps[i]
        level[i] = 0.998 * level[i - 1] + rng.normal(0, 0.03)
    x = ar / (ar.std() + 1e-9) + level
    return x + rng.normal(0, 0.05, n)


def _regime(rng: np.random.Generator, n: int, period: float) -> np.ndarray:
    """Markov switching between operating modes (own level and noise), ramped, with brief *normal* bursts."""
    modes = rng.normal(0, 1.2, size=3)
    noise = rng.uniform(0.05, 0.3, size=3)
    state = np.cumsum(rng.random(n) < 1 / 500) % 3
    target = modes[state]
    level = np.zeros(n)
    for i in range(1, n):  # set-point changes ramp over ~30 events instead of jumping
        level[i] = level[i - 1] + (target[i] - level[i - 1]) / 30
    x = level + noise[state] * rng.normal(0, 1, n) + 0.2 * np.sin(2 * np.pi * np.arange(n) / period)
    for s in np.flatnonzero(rng.random(n) < 1 / 600).tolist():  # start-up transients: part of normal operation
        e = min(n, int(s) + int(rng.integers(5, 25)))
        x[s:e] += rng.normal(0, 3 * noise[state[s]], e - s)
    return np.asarray(x)


def _rig(rng: np.random.Generator, n: int, features: int, period: float) -> np.ndarray:
    """A machine: sensors mix shared factors (load regimes, ambient cycle, AR disturbance) with their own lags
    and first-order responses; one sensor responds quadratically (power ~ flow squared)."""
    factors = np.stack([_regime(rng, n, period), _seasonal(rng, n, period), _autoregressive(rng, n)], axis=1)
    x = np.zeros((n, features))
    for j in range(features):
        w = rng.normal(0, 1, 3) * np.array([1.0, 0.6, 0.4])
        drive = sum(w[k] * np.roll(factors[:, k], int(rng.integers(0, 15))) for k in range(3))
        tau = rng.uniform(1, 20)
        y = np.zeros(n)
        for i in range(1, n):
            y[i] = y[i - 1] + (drive[i] - y[i - 1]) / tau
        x[:, j] = y**2 / 3 if j == features - 1 else y
    return x + rng.normal(0, 1, (n, features)) * rng.uniform(0.03, 0.15, features)


def _signal(rng: np.random.Generator, family: str, n: int, features: int, period: float) -> np.ndarray:
    """Normal behaviour of one unit, (n, features)."""
    if family == "latent":
        return _machine(rng, n, features, period)
    if family == "rig":
        return _rig(rng, n, features, period)
    one = {"seasonal": _seasonal, "regime": _regime}.get(family)
    x = one(rng, n, period) if one is not None else _autoregressive(rng, n)
    return np.asarray(x)[:, None]


def _sampled(
    rng: np.random.Generator, family: str, n: int, features: int, period: float, irregular: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(values, times): every second, or for an irregular unit n sorted random instants of a 4x denser signal
    (gaps of mean 1 s, some far longer), so the series really is the process observed at uneven times."""
    if not irregular:
        return _signal(rng, family, n, features, period), 1.7e9 + np.arange(n, dtype=np.float64)
    dense = _signal(rng, family, 4 * n, features, 4 * period)
    picked = np.sort(rng.choice(4 * n, size=n, replace=False))
    return dense[picked], 1.7e9 + picked / 4.0


def _inject(
    rng: np.random.Generator, x: np.ndarray, lab: np.ndarray, period: float, touched: list[tuple[int, ...]]
) -> list[tuple[str, int, int]]:
    """Inject the faults into ``x`` (test rows) and ``lab``; returns the events, appends each one's features to
    ``touched``."""
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
        touched.append(tuple(range(f)) if kind == "fault_state" else (j,))
        pos = e + int(rng.integers(150, 400))
    return events


def make_fleet(
    seed: int, streams: int = 6, machines: int = 2, n_train: int = 3000, n_test: int = 4000
) -> list[FleetUnit]:
    """The fleet for one seed: ``streams`` single-feature units and ``machines`` 8-sensor units.

    Families cycle through :data:`SINGLE_FAMILIES` / :data:`MACHINE_FAMILIES` (offset by the seed) so that every
    family appears in a fleet of a few units; whether a unit is sampled irregularly is drawn per unit.
    """
    rng = np.random.default_rng(seed)
    units: list[FleetUnit] = []
    for u in range(streams + machines):
        f = 1 if u < streams else 8
        pool = SINGLE_FAMILIES if f == 1 else MACHINE_FAMILIES
        family = pool[(u + seed) % len(pool)]
        period = float(rng.uniform(40, 200))
        n = n_train + n_test
        x, times = _sampled(rng, family, n, f, period, bool(rng.random() < IRREGULAR_SHARE))
        test = x[n_train:].copy()
        lab = np.zeros(n_test, dtype=np.int64)
        touched: list[tuple[int, ...]] = []
        ev = _inject(rng, test, lab, period, touched)
        units.append(
            FleetUnit(
                f"s{seed}-u{u}",
                x[:n_train],
                test,
                lab,
                ev,
                family,
                times[:n_train],
                times[n_train:],
                touched,
                x[n_train:],
            )
        )
    return units
