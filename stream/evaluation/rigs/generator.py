"""Seeded pump rigs: 8 physically coupled sensors, normal operation and labelled faults lasting minutes.

A stand-in for industrial recordings (issue 16's hidden hold-out: 8 sensors per rig, faults of minutes, per-rig
normal recordings). A centrifugal pump on a variable-speed drive feeds a pipe through a control valve:

* the operator's **load setpoint** ``u`` moves between four operating levels (ramped, every 15-60 minutes) with a
  slow daily demand cycle and short normal dips (a transient: valve closes partly for 1-3 minutes);
* the **valve** opening follows ``u`` with a lag; the **pump speed** follows ``0.55 + 0.45 u`` with a lag;
* **flow** and **head** are the intersection of the pump curve ``H = a w² - b Q²`` with the system curve
  ``H = h0 + c / v² Q²``; **suction pressure** is a slowly wandering tank pressure minus suction losses
  ``~ Q²``; **discharge pressure** is suction plus head;
* **motor power** is hydraulic power over an efficiency curve peaked at the best-efficiency flow, plus
  friction ``~ w³``;
* **oil temperature** follows ambient (a daily cycle) plus heat ``~ power`` through the cooler (lag ~15 min);
  **bearing temperature** follows oil plus friction heat ``~ w²`` (lag ~5 min);
* **vibration** (RMS) combines running speed, off-best-efficiency recirculation, wear and turbulence.

Sensors (column order): ``load_cmd, flow, suction_p, discharge_p, motor_kw, oil_temp, bearing_temp,
vibration``, each with its own gain, offset and noise per rig. Faults (physical ones inside the simulation,
sensor ones on the readings): ``bearing_wear`` (vibration and bearing temperature rise gradually),
``cavitation`` (tank pressure sags; flow turns noisy and drops, vibration rises), ``leak`` (between pump and
flow meter: the pump delivers more, metered flow less, pressure lower; every sensor stays in range),
``stuck_sensor`` (a reading holds its last value), ``sensor_drift`` (a reading's bias grows to ~1.5 of its
standard deviations), ``stuck_valve`` (the valve stops following a setpoint change the operator makes during the
fault) and ``cooling_failure`` (the cooler loses most of its capacity: temperatures climb with their lags).
Magnitudes are drawn per fault; many stay inside each sensor's normal range.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SENSORS: tuple[str, ...] = (
    "load_cmd",
    "flow",
    "suction_p",
    "discharge_p",
    "motor_kw",
    "oil_temp",
    "bearing_temp",
    "vibration",
)
FAULTS: tuple[str, ...] = (
    "bearing_wear",
    "cavitation",
    "leak",
    "stuck_sensor",
    "sensor_drift",
    "stuck_valve",
    "cooling_failure",
)
TUNE_SEEDS: tuple[int, ...] = tuple(range(0, 8))
REPORT_SEEDS: tuple[int, ...] = tuple(range(100, 108))
SAMPLING_SECONDS: tuple[float, ...] = (2.0, 5.0, 10.0)
FAULT_ROWS = (60, 600)


@dataclass
class Rig:
    """One rig: a normal recording (training) and a test recording with per-row fault labels."""

    name: str
    dt: float  # seconds between rows
    normal_times: np.ndarray
    normal: np.ndarray  # (T_normal, 8)
    times: np.ndarray
    test: np.ndarray  # (T_test, 8)
    labels: np.ndarray  # (T_test,) 0/1
    events: list[tuple[str, int, int]] = field(default_factory=list)  # (fault, start, end) in test rows


@dataclass
class _Faults:
    """Per-row fault drivers of the simulation (zeros and ones when healthy)."""

    wear: np.ndarray
    tank_sag: np.ndarray
    cav_noise: np.ndarray
    leak: np.ndarray
    cooling: np.ndarray
    valve_stuck: np.ndarray  # bool


def _healthy(n: int) -> _Faults:
    return _Faults(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.ones(n), np.zeros(n, dtype=bool))


def _lag(dt: float, tau: float) -> float:
    """Exact first-order step weight for a time constant ``tau`` at sampling ``dt``."""
    return float(1.0 - np.exp(-dt / tau))


def _ou(rng: np.random.Generator, n: int, dt: float, tau: float) -> np.ndarray:
    """A unit-variance mean-reverting (Ornstein-Uhlenbeck) wander with time constant ``tau`` seconds."""
    phi = float(np.exp(-dt / tau))
    eps = rng.normal(0, np.sqrt(1 - phi * phi), n)
    x = np.zeros(n)
    x[0] = rng.normal()
    for i in range(1, n):
        x[i] = phi * x[i - 1] + eps[i]
    return x


def _setpoint(rng: np.random.Generator, n: int, dt: float, t0: float, levels: np.ndarray) -> np.ndarray:
    """Four operating levels (ramped, held 15-60 minutes, each visited once before any repeats), a daily demand
    cycle and brief normal load dips."""
    visits = [
        *rng.permutation(len(levels)).tolist()
    ]  # the site's levels, each once first (the normal recording sees them)
    u, target, level = np.zeros(n), levels[visits[0]], levels[visits[0]]
    next_change = rng.uniform(900, 3600)
    ramp = _lag(dt, rng.uniform(60, 240))
    for i in range(n):
        if i * dt >= next_change:
            if visits:
                visits.pop(0)
            target = levels[visits[0] if visits else int(rng.integers(len(levels)))]
            next_change += rng.uniform(900, 3600)
        level += ramp * (target - level)
        u[i] = level
    t = t0 + np.arange(n) * dt
    u = u + 0.06 * np.sin(2 * np.pi * t / 86400 + 1.0)
    dips = np.flatnonzero(rng.random(n) < dt / 2400)  # a dip every ~40 minutes
    for s in dips.tolist():
        e = min(n, s + int(rng.uniform(60, 180) / dt))
        u[s:e] *= rng.uniform(0.6, 0.85)
    return np.clip(u, 0.2, 1.05)


@dataclass(frozen=True)
class _Pump:
    """A rig's fixed physics (the same in its normal and its test recording)."""

    a: float
    b: float
    h0: float
    c0: float
    q_bep: float
    amb_phase: float
    amb_mean: float
    k_heat: float
    k_fric: float
    tau: tuple[float, float, float, float]  # valve, speed, oil, bearing time constants (s)
    levels: np.ndarray  # the operating levels of the load setpoint


def _pump(rng: np.random.Generator) -> _Pump:
    return _Pump(
        a=rng.uniform(55, 70),  # head in m at full speed, flow in 100 m3/h
        b=rng.uniform(4, 8),
        h0=rng.uniform(8, 15),
        c0=rng.uniform(2, 5),
        q_bep=rng.uniform(1.6, 2.2),
        amb_phase=rng.uniform(0, 6.3),
        amb_mean=rng.uniform(12, 26),
        k_heat=rng.uniform(0.25, 0.4),
        k_fric=rng.uniform(6, 12),
        tau=(rng.uniform(8, 20), rng.uniform(15, 40), rng.uniform(600, 1200), rng.uniform(200, 400)),
        levels=rng.uniform(0.35, 1.0, size=4),
    )


def _simulate(
    rng: np.random.Generator,
    pump: _Pump,
    u: np.ndarray,
    dt: float,
    t0: float,
    faults: _Faults,
    temps0: tuple[float, float] | None = None,
    wander: float = 1.0,
) -> np.ndarray:
    """True physical quantities (n, 8) in engineering units, before sensor gains and noise; ``temps0``: the oil
    and bearing temperatures at the first row (None: ambient + 20 u and 5 more, what the rig recordings start at);
    ``wander`` scales the slow tank-pressure and ambient wanders (1: the rigs' day-long recordings)."""
    n = u.shape[0]
    a, b, h0, c0, q_bep = pump.a, pump.b, pump.h0, pump.c0, pump.q_bep
    k_heat, k_fric = pump.k_heat, pump.k_fric
    a_valve, a_speed, a_oil, a_bear = (_lag(dt, tau) for tau in pump.tau)
    tank = 1.5 + wander * 0.08 * _ou(rng, n, dt, 3600.0)  # bar: the tank level wanders over about an hour
    t = t0 + np.arange(n) * dt
    daily = pump.amb_mean + 5 * np.sin(2 * np.pi * t / 86400 + pump.amb_phase)
    ambient = daily + wander * 0.5 * _ou(rng, n, dt, 1800.0)
    out = np.zeros((n, 8))
    v, w = u[0], 0.55 + 0.45 * u[0]
    oil = ambient[0] + 20 * u[0] if temps0 is None else temps0[0]
    bear = oil + 5 if temps0 is None else temps0[1]
    turbulence = np.asarray(rng.normal(0.0, 1.0, size=n))
    for i in range(n):
        if not faults.valve_stuck[i]:
            v += a_valve * (u[i] - v)
        w += a_speed * (0.55 + 0.45 * u[i] - w)
        c = c0 / max(v, 0.1) ** 2 * (1 - faults.leak[i])  # a leak lowers the resistance the pump sees
        q_pump = np.sqrt(max(a * w * w - h0, 0.1) / (b + c))
        q_meter = q_pump * (1 - 0.9 * faults.leak[i]) * (1 - 0.5 * faults.cav_noise[i])
        q_meter *= 1 + faults.cav_noise[i] * rng.normal(0, 1)  # vapour pockets: a noisy reading
        head = (a * w * w - b * q_pump * q_pump) * (1 - 0.5 * faults.cav_noise[i])
        suction = tank[i] - faults.tank_sag[i] - 0.04 * q_pump * q_pump
        discharge = suction + head / 10.2  # m of water -> bar
        eff = 0.78 - 0.18 * ((q_pump / w - q_bep) / q_bep) ** 2
        power = 2.73 * q_pump * head / max(eff, 0.2) + k_fric * w**3 * (1 + 0.3 * faults.wear[i])
        oil += a_oil * (ambient[i] + k_heat * power / faults.cooling[i] - oil)
        bear += a_bear * (oil + 8 * w * w * (1 + 2.5 * faults.wear[i]) - bear)
        recirc = 3 * ((q_pump / w - q_bep) / q_bep) ** 2
        vib = np.sqrt((1.2 * w * w) ** 2 + recirc**2 + (1.5 * faults.wear[i]) ** 2) * (
            1 + 0.05 * turbulence[i] + 0.6 * faults.cav_noise[i] * abs(rng.normal(0, 1))
        )
        out[i] = (u[i], 100 * q_meter, suction, discharge, power, oil, bear, vib)
    return out


def _read(rng: np.random.Generator, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensor gain, offset and noise level per rig (the same in its normal and test recordings)."""
    gain = rng.uniform(0.95, 1.05, 8)
    offset = rng.normal(0, 0.02, 8) * true.std(axis=0)
    noise = rng.uniform(0.02, 0.08, 8) * true.std(axis=0)
    noise[0] = 0.001  # the setpoint is a command, not a measurement
    return gain, offset, noise


def _schedule(rng: np.random.Generator, n: int, dt: float) -> list[tuple[str, int, int]]:
    """Every fault kind once, in random order, 60-600 rows long, with 300-800 normal rows between them."""
    events, pos = [], int(rng.integers(300, 600))
    for kind in rng.permutation(FAULTS).tolist():
        length = int(rng.integers(FAULT_ROWS[0], FAULT_ROWS[1] + 1))
        if pos + length + 300 >= n:
            break
        events.append((str(kind), pos, pos + length))
        pos += length + int(rng.integers(300, 800))
    return events


def _physical_faults(rng: np.random.Generator, n: int, events: list[tuple[str, int, int]], u: np.ndarray) -> _Faults:
    """Drivers of the physical faults; a stuck valve also gets a setpoint change inside its window."""
    f = _healthy(n)
    for kind, s, e in events:
        ramp = np.linspace(0, 1, e - s)
        if kind == "bearing_wear":
            f.wear[s:e] = rng.uniform(0.4, 1.0) * ramp**1.5
        elif kind == "cavitation":
            f.tank_sag[s:e] = rng.uniform(0.1, 0.3) * np.minimum(1, 4 * ramp)
            f.cav_noise[s:e] = rng.uniform(0.04, 0.1) * np.minimum(1, 4 * ramp)
        elif kind == "leak":
            f.leak[s:e] = rng.uniform(0.15, 0.3) * np.minimum(1, 10 * ramp)
        elif kind == "cooling_failure":
            f.cooling[s:e] = rng.uniform(0.7, 0.85)
        elif kind == "stuck_valve":
            f.valve_stuck[s:e] = True
            mid = s + (e - s) // 4
            step = rng.uniform(0.1, 0.2) * rng.choice([-1, 1])
            u[mid:e] = np.clip(u[mid:e] + step, 0.2, 1.05)
    return f


def _sensor_faults(rng: np.random.Generator, x: np.ndarray, events: list[tuple[str, int, int]], sd: np.ndarray) -> None:
    """Stuck and drifting readings, applied to the recorded values in place."""
    for kind, s, e in events:
        j = int(rng.integers(1, 8))  # any measured sensor, never the command
        if kind == "stuck_sensor":
            x[s:e, j] = x[s - 1, j]
        elif kind == "sensor_drift":
            x[s:e, j] += rng.choice([-1, 1]) * rng.uniform(1.0, 2.0) * sd[j] * np.linspace(0, 1, e - s)


def make_rig(seed: int, index: int, n_normal: int = 6000, n_test: int = 7000) -> Rig:
    """Rig ``index`` of site ``seed``: a normal recording of the day before (same clock hours, so the daily cycle
    is covered), then a labelled test recording; the pump, its sensors and its operating levels are the same."""
    fixed = np.random.default_rng([seed, index, 0])
    rng = np.random.default_rng([seed, index, 1])
    dt = float(fixed.choice(SAMPLING_SECONDS))
    pump = _pump(fixed)
    t0 = 1.7e9 + float(fixed.uniform(0, 86400))
    u_normal = _setpoint(rng, n_normal, dt, t0 - 86400, pump.levels)
    normal_true = _simulate(rng, pump, u_normal, dt, t0 - 86400, _healthy(n_normal))
    u = _setpoint(rng, n_test, dt, t0, pump.levels)
    events = _schedule(rng, n_test, dt)
    faults = _physical_faults(rng, n_test, events, u)
    test_true = _simulate(rng, pump, u, dt, t0, faults)
    gain, offset, noise = _read(fixed, normal_true)
    normal = normal_true * gain + offset + rng.normal(0, 1, normal_true.shape) * noise
    test = test_true * gain + offset + rng.normal(0, 1, test_true.shape) * noise
    _sensor_faults(rng, test, events, normal.std(axis=0))
    labels = np.zeros(n_test, dtype=np.int64)
    for _, s, e in events:
        labels[s:e] = 1
    normal_times, times = t0 - 86400 + np.arange(n_normal) * dt, t0 + np.arange(n_test) * dt
    return Rig(f"site{seed}-rig{index}", dt, normal_times, normal, times, test, labels, events)


def make_site(seed: int, rigs: int = 3, n_normal: int = 6000, n_test: int = 7000) -> list[Rig]:
    """The rigs of one seed (a site): each with its own pump, sensors, sampling and fault schedule."""
    return [make_rig(seed, i, n_normal, n_test) for i in range(rigs)]
