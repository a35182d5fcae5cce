"""Issue 16: which score would reach pointwise F1 >= 0.75 at <= 15 % false alarms on multivariate data?

Bench-side only (no product change). Two phases, so that post-processing candidates are cheap:

* ``collect``: per rig site (3 rigs) and per fleet group (same feature count), the product path once
  (`rnnwatch train` + `rnnwatch score`, CLI defaults: :func:`stream.evaluation.user_eval.score_files`,
  :func:`stream.evaluation.fleet.product.train_and_score`); then the trained artifact's Detector is run over each
  unit's normal rows followed by its test rows (one event per unit per batch), recording ``Detector.step``'s
  mean/scale/nll and the top-layer hidden state from the state table, four times: trained weights with the
  running normalisation (as shipped, ``trained_run``), trained weights with the normalisation frozen per stream
  at the end of the normal rows (``trained_frozen``), trained and seeded random weights
  (``ModelWeights.random(config, seed=0)``) with every row normalised by the unit's fit-row mean and variance
  (``trained_fixed``, ``untrained_fixed``; ``_tx`` / ``_ux`` in combination names). Each unit's arrays and the
  product's own scores go to one ``.npz`` in the cache, the artifact beside them.
* ``report``: every candidate from the cache. Each candidate is a distance from a reference fitted on a
  unit's normal rows ``WARMUP .. WARMUP + 0.7 (n - WARMUP)`` and never updated, cut at the 0.995 quantile of its
  own score on the held-out rest of the normal rows (the envelope's rule, ``rnncore.stages.envelope``; no
  labels). Combinations are the max of ratios to their own cuts, cut again the same way. Post-processing
  (hysteresis, minimum run) acts on the ratio to the cut. Pooled pointwise and event metrics per benchmark.

    nice -n 10 .venv/bin/python bench/detector_probes.py collect --split tune --seeds 8 --fleet-seeds 4
    nice -n 10 .venv/bin/python bench/detector_probes.py report --split tune
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from rnncore.detector import Detector
from rnncore.kernels import layout
from rnncore.model.artifact import load_artifact
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import EnvelopeParams, fit_envelope
from rnncore.stages.envelope import _features as ew_features
from rnncore.stages.selffit import training_ratios
from stream.evaluation.fleet.generator import KINDS, make_fleet
from stream.evaluation.fleet.metrics import best_threshold, eventwise, pointwise
from stream.evaluation.fleet.product import train_and_score
from stream.evaluation.fleet.runner import split_seeds as fleet_seeds
from stream.evaluation.rigs.generator import FAULTS, make_site
from stream.evaluation.rigs.runner import split_seeds as rig_seeds
from stream.evaluation.rigs.runner import write_site
from stream.evaluation.user_data import load_user_data
from stream.evaluation.user_eval import score_files

WARMUP = 200  # the envelope's: first normal rows left out of every reference
FIT_FRACTION = 0.7  # the envelope's: of the rest, the reference fit; then the held-out normal rows for the cut
QUANTILE = 0.995  # the envelope's cut: 0.5 % of held-out normal rows above it
CACHE = Path(tempfile.gettempdir()) / "rnnwatch-detector-probes"
# chosen on TUNE (bench/DETECTOR_FINDINGS.md), then run on REPORT; the last is env8 through the product code
CHOSEN = ("product", "env8", "env4|hyst0.5", "product_envelope_w8")
AFTER = 200  # rows after a fault's end counted for the share of false alarms that linger
PASSES = ("trained_run", "trained_frozen", "trained_fixed", "untrained_fixed")


# ---------------------------------------------------------------------------------------------- collect
def _passes(weights: ModelWeights, values: np.ndarray, times: np.ndarray, n_normal: int, mode: str,
            keys: Sequence[str]) -> dict[str, np.ndarray]:  # fmt: skip
    """Hidden [U, T, H], standardised one-step residuals [U, T, F] and nll [U, T] over normal then test rows.

    ``mode``: ``run`` (the running normalisation, as shipped), ``frozen`` (running over the normal rows, then held
    at its value at the end of them), ``fixed`` (every row normalised by the mean and variance of the unit's fit
    rows: a per-stream normalisation from the training logs, the same in reference and test)."""
    detector = Detector(weights, max_streams=len(keys))
    U, T, F = values.shape
    columns = detector.table.columns
    rows, _ = detector.table.rows_for(list(keys))
    hidden = np.zeros((U, T, weights.config.hidden_size), dtype=np.float32)
    resid, nll = np.zeros((U, T, F)), np.zeros((U, T))
    mean, scale = np.zeros((U, F)), np.ones((U, F))
    fit = slice(WARMUP, WARMUP + int((n_normal - WARMUP) * FIT_FRACTION))
    held = None
    if mode == "fixed":
        held = np.stack([values[:, fit].mean(axis=1), values[:, fit].var(axis=1)], axis=1).astype(np.float32)
    for t in range(T):
        if mode == "frozen" and t == n_normal:
            held = columns[layout.NORM][rows].copy()
        if held is not None:
            columns[layout.NORM][rows] = held
        out = detector.step(list(keys), times[:, t], values[:, t])
        resid[:, t] = (values[:, t] - mean) / scale
        mean, scale = out.mean.reshape(U, F), np.maximum(out.scale.reshape(U, F), 1e-6)
        nll[:, t] = out.nll
        hidden[:, t] = columns[layout.RECURRENT][rows, -1, 0]
    resid[:, 0] = 0.0
    return {"hidden": hidden, "resid": resid.astype(np.float32), "nll": nll.astype(np.float32)}


@dataclass
class _Unit:
    name: str
    normal: np.ndarray
    normal_times: np.ndarray
    test: np.ndarray
    test_times: np.ndarray
    labels: np.ndarray
    events: list[tuple[str, int, int]]
    product: np.ndarray  # the product's test scores / its default threshold


def _save_group(units: Sequence[_Unit], artifact: Path, out: Path) -> None:
    """Run the three Detector passes over the group and write one npz per unit."""
    trained = load_artifact(artifact)
    untrained = ModelWeights.random(trained.config, seed=0, scale=None)
    n = units[0].normal.shape[0]
    values = np.stack([np.concatenate([u.normal, u.test]) for u in units]).astype(np.float64)
    times = np.stack([np.concatenate([u.normal_times, u.test_times]) for u in units])
    keys = [u.name for u in units]
    got = {p: _passes(trained if p.startswith("trained") else untrained, values, times, n, p.split("_")[1], keys)
           for p in PASSES}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(artifact, out / "models" / units[0].name, dirs_exist_ok=True)  # to re-run passes later
    for i, u in enumerate(units):
        arrays = {f"{p}_{k}": v[i] for p, d in got.items() for k, v in d.items()}
        np.savez_compressed(
            out / f"{u.name}.npz",
            values=values[i],
            n_normal=n,
            labels=u.labels,
            ev_kind=np.array([k for k, _, _ in u.events]),
            ev_span=np.array([(s, e) for _, s, e in u.events], dtype=np.int64).reshape(-1, 2),
            product=u.product,
            **arrays,
        )


def collect_rigs(seeds: Iterable[int], out: Path, work: Path) -> None:
    """Each site: the evaluate path (train + score), then the passes; cache under ``out/rigs``."""
    for seed in seeds:
        rigs = make_site(seed)
        root = work / f"site{seed}"
        data, normal = write_site(rigs, root)
        files = load_user_data(data, "fault", "time", normal)
        product = {s.name: s.score for s in score_files(files, root / "work")}
        by_name = {r.name: r for r in rigs}
        units = [
            _Unit(
                f.key, f.train_values, f.train_times, f.values, f.times, f.labels, by_name[f.key].events, product[f.key]
            )  # fmt: skip
            for f in files
        ]
        _save_group(units, root / "work" / "model", out / "rigs")
        print(f"rigs site {seed}: cached", flush=True)


def collect_fleet(seeds: Iterable[int], out: Path, work: Path) -> None:
    """Each fleet seed and feature count: `rnnwatch train` + `score`, then the passes; cache under ``out/fleet``."""
    for seed in seeds:
        fleet = make_fleet(seed)
        for width in sorted({u.test.shape[1] for u in fleet}):
            group = [u for u in fleet if u.test.shape[1] == width]
            run = train_and_score(group, work / f"s{seed}f{width}")
            units = [
                _Unit(
                    u.name,
                    u.train,
                    u.train_times,
                    u.test,
                    u.test_times,
                    u.labels,
                    u.events,
                    run.scores[u.name] / run.threshold,
                )  # fmt: skip
                for u in group
            ]
            _save_group(units, run.artifact, out / "fleet")
        print(f"fleet seed {seed}: cached", flush=True)


# ---------------------------------------------------------------------------------------------- statistics
def _mean_icov(fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The envelope's reference: mean and inverse covariance with a ridge of 1e-3 of the mean variance."""
    cov = np.atleast_2d(np.cov(fit, rowvar=False))
    cov = cov + np.eye(cov.shape[0]) * (1e-3 * np.trace(cov) / cov.shape[0] + 1e-9)
    return fit.mean(axis=0), np.linalg.inv(cov)


def t2(x: np.ndarray, fit: slice) -> np.ndarray:
    """Hotelling T² of every row against the fit rows."""
    x = np.asarray(x, dtype=np.float64)
    mu, icov = _mean_icov(x[fit])
    d = x - mu
    return np.asarray(np.einsum("ij,jk,ik->i", d, icov, d))


def pca_t2_spe(x: np.ndarray, fit: slice, share: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """PCA on the standardised fit rows: T² in the components covering ``share`` of the variance, and the Q
    (squared prediction error) residual outside them."""
    ref = x[fit]
    mu, sd = ref.mean(axis=0), ref.std(axis=0) + 1e-9
    z = (x - mu) / sd
    _, s, vt = np.linalg.svd(z[fit], full_matrices=False)
    var = s**2 / (ref.shape[0] - 1)
    k = int(np.searchsorted(np.cumsum(var) / var.sum(), share) + 1)
    p = vt[:k].T
    scores = z @ p
    return np.sum(scores**2 / var[:k], axis=1), np.sum((z - scores @ p.T) ** 2, axis=1)


def conditional(x: np.ndarray, fit: slice) -> np.ndarray:
    """Per feature, its standardised residual given all the others under the fit rows' Gaussian:
    ``(S^-1 d)_j / sqrt((S^-1)_jj)`` (the leave-one-out regression residual; = z-score for F = 1)."""
    mu, icov = _mean_icov(x[fit])
    return np.asarray(((x - mu) @ icov) / np.sqrt(np.diag(icov)))


def max_sq(z: np.ndarray, fit: slice) -> np.ndarray:
    """max over features of the squared feature, each standardised on the fit rows (a 1-dof statistic)."""
    ref = z[fit]
    return np.asarray(np.max(((z - ref.mean(axis=0)) / (ref.std(axis=0) + 1e-9)) ** 2, axis=1))


def boxcar(x: np.ndarray, window: int, log_of_square: bool = False) -> np.ndarray:
    """[trailing mean, log trailing variance (or mean square)] over ``window`` rows, causal."""
    c1 = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    c2 = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x * x]), axis=0)
    hi = np.arange(1, x.shape[0] + 1)
    lo = np.maximum(hi - window, 0)
    n = (hi - lo)[:, None]
    mean, square = (c1[hi] - c1[lo]) / n, (c2[hi] - c2[lo]) / n
    spread = square if log_of_square else np.maximum(square - mean**2, 0.0)
    return np.hstack([mean, np.log(spread + 1e-6)])


def ewma(x: np.ndarray, window: int) -> np.ndarray:
    """Exponentially weighted mean of a 1-D score with weight 1/window (causal, started at the first value)."""
    a = 1.0 / window
    y, _ = lfilter([a], [1.0, a - 1.0], x, zi=[x[0] * (1.0 - a)])
    return np.asarray(y)


def hysteresis(ratio: np.ndarray, low: float) -> np.ndarray:
    """Flag from ``ratio >= 1`` on and keep flagging while ``ratio >= low`` (returned as a ratio: 1 or 0)."""
    out = np.zeros(ratio.shape[0])
    on = False
    for t, r in enumerate(ratio.tolist()):
        on = r >= 1.0 or (on and r >= low)
        out[t] = 1.0 if on else 0.0
    return out


def min_run(ratio: np.ndarray, m: int) -> np.ndarray:
    """Causal: flag row t only when the last ``m`` rows were all at or above the cut."""
    above = (ratio >= 1.0).astype(np.int64)
    c = np.concatenate([[0], np.cumsum(above)])
    t = np.arange(1, ratio.shape[0] + 1)
    return ((c[t] - c[np.maximum(t - m, 0)]) >= np.minimum(t, m)).astype(np.float64)


# ---------------------------------------------------------------------------------------------- candidates
@dataclass
class Cached:
    """One unit from the cache."""

    name: str
    arrays: dict[str, np.ndarray]
    n: int
    labels: np.ndarray
    events: list[tuple[str, int, int]]

    @property
    def fit(self) -> slice:
        return slice(WARMUP, WARMUP + int((self.n - WARMUP) * FIT_FRACTION))

    @property
    def held(self) -> slice:
        return slice(self.fit.stop, self.n)


def load_cache(folder: Path) -> list[Cached]:
    """Every cached unit of one benchmark folder."""
    out = []
    for path in sorted(folder.glob("*.npz")):
        z = np.load(path)
        arrays = {k: z[k] for k in z.files}
        spans = arrays.pop("ev_span")
        events = [(str(k), int(s), int(e)) for k, (s, e) in zip(arrays.pop("ev_kind").tolist(), spans, strict=True)]
        n = int(arrays.pop("n_normal"))
        out.append(Cached(path.stem, arrays, n, arrays.pop("labels"), events))
    return out


def ratio(score: np.ndarray, unit: Cached, q: float = QUANTILE) -> np.ndarray:
    """Score over its own held-out cut, the ``q`` quantile of the held-out normal rows (1.0 = the flag)."""
    return score / (float(np.quantile(score[unit.held], q)) + 1e-12)


def slow_means(x: np.ndarray, windows: Sequence[int] = (64, 256)) -> np.ndarray:
    """``[x, EW mean over each window]`` per row: the current values beside their slow context (lags)."""
    return np.hstack([x] + [ew_features(x, w)[:, : x.shape[1]] for w in windows])


def base_candidates(u: Cached) -> dict[str, np.ndarray]:
    """Every single statistic's ratio to its own cut, over normal + test rows."""
    x, fit, F = u.arrays["values"], u.fit, u.arrays["values"].shape[1]
    r: dict[str, np.ndarray] = {"raw_t2": ratio(t2(x, fit), u)}
    for w in (4, 8, 16, 32):
        r[f"ew{w}_t2"] = ratio(t2(ew_features(x, w), fit), u)
    for w in (16, 32, 64):
        r[f"ewmean{w}_t2"] = ratio(t2(ew_features(x, w)[:, :F], fit), u)  # the smoothed values only
    for w in (8, 32):
        r[f"box{w}_t2"] = ratio(t2(boxcar(x, w), fit), u)
    if F > 1:
        pt2, spe = pca_t2_spe(x, fit)
        r["pca_t2"], r["pca_spe"] = ratio(pt2, u), ratio(spe, u)
        ew8 = ew_features(x, 8)[:, :F]  # EW mean only: the smoothed state, PCA on it
        pt2, spe = pca_t2_spe(ew8, fit)
        r["pca_ew8mean_t2"], r["pca_ew8mean_spe"] = ratio(pt2, u), ratio(spe, u)
        _, spe = pca_t2_spe(x, fit)
        for w in (8, 32):
            r[f"pca_spe_ew{w}"] = ratio(ewma(spe, w), u)
    for p in PASSES:
        r[f"hidden_{p}"] = ratio(t2(u.arrays[f"{p}_hidden"], fit), u)
    for p in PASSES:
        res = u.arrays[f"{p}_resid"].astype(np.float64)
        r[f"resid_{p}"] = ratio(t2(res, fit), u)
        for w in (8, 32):
            r[f"resid{w}_{p}"] = ratio(t2(boxcar(res, w, log_of_square=True), fit), u)
    z = conditional(x, fit)
    r["cond_max"] = ratio(max_sq(z, fit), u)
    for w in (8, 32):
        zw = ew_features(z, w)[:, :F]
        r[f"cond_ew{w}_max"] = ratio(max_sq(zw, fit), u)
        r[f"cond_ew{w}_t2"] = ratio(t2(zw, fit), u)
    dyn = t2(slow_means(x), fit)
    r["dyn_t2"], r["dyn_t2_ew8"] = ratio(dyn, u), ratio(ewma(dyn, 8), u)
    r["nll_trained_run"] = ratio(u.arrays["trained_run_nll"].astype(np.float64), u)
    # the product's envelope at each window: max(raw, ew) ratios, cut again (w = 32 is what ships)
    for w in (4, 8, 16, 32):
        r[f"env{w}"] = ratio(np.maximum(r["raw_t2"], r[f"ew{w}_t2"]), u)
    return r


COMBOS: dict[str, tuple[str, ...]] = {
    "env8+hidden_tx": ("env8", "hidden_trained_fixed"),
    "env8+hidden_ux": ("env8", "hidden_untrained_fixed"),
    "env32+hidden_tx": ("env32", "hidden_trained_fixed"),
    "env8+resid8_tx": ("env8", "resid8_trained_fixed"),
    "env8+resid8_ux": ("env8", "resid8_untrained_fixed"),
    "env8+resid32_tx": ("env8", "resid32_trained_fixed"),
    "env8+hidden_tx+resid8_tx": ("env8", "hidden_trained_fixed", "resid8_trained_fixed"),
    "env8+pca_spe": ("env8", "pca_spe"),
    "env4+hidden_tx": ("env4", "hidden_trained_fixed"),
    "env16+hidden_tx": ("env16", "hidden_trained_fixed"),
    "raw+box8": ("raw_t2", "box8_t2"),
    "raw+resid8_tx": ("raw_t2", "resid8_trained_fixed"),
    "hidden_tx+resid8_tx": ("hidden_trained_fixed", "resid8_trained_fixed"),
    "env8+spe_ew8": ("env8", "pca_spe_ew8"),
    "env8+spe_ew32": ("env8", "pca_spe_ew32"),
    "env8+spe_ew8+hidden_tx": ("env8", "pca_spe_ew8", "hidden_trained_fixed"),
    "env8+spe_ew8+resid8_tx": ("env8", "pca_spe_ew8", "resid8_trained_fixed"),
    "env8+hidden_ux+resid8_ux": ("env8", "hidden_untrained_fixed", "resid8_untrained_fixed"),
    "env8+ewmean32": ("env8", "ewmean32_t2"),
    "env8+ewmean64": ("env8", "ewmean64_t2"),
    "env8+ewmean32+hidden_ux": ("env8", "ewmean32_t2", "hidden_untrained_fixed"),
    "env8+cond_ew8_max": ("env8", "cond_ew8_max"),
    "env8+cond_ew32_max": ("env8", "cond_ew32_max"),
    "env8+cond_ew32_t2": ("env8", "cond_ew32_t2"),
    "env8+cond_max": ("env8", "cond_max"),
    "env8+cond_ew32_max+hidden_tx": ("env8", "cond_ew32_max", "hidden_trained_fixed"),
    "env8+cond_ew32_max+resid8_tx": ("env8", "cond_ew32_max", "resid8_trained_fixed"),
    "env8+cond_ew32_max+resid8_ux": ("env8", "cond_ew32_max", "resid8_untrained_fixed"),
    "env8+dyn": ("env8", "dyn_t2"),
    "env8+dyn_ew8": ("env8", "dyn_t2_ew8"),
    "env8+dyn_ew8+hidden_tx": ("env8", "dyn_t2_ew8", "hidden_trained_fixed"),
    "env8+dyn_ew8+resid8_tx": ("env8", "dyn_t2_ew8", "resid8_trained_fixed"),
}
LOWER_CUT_ON = (
    "env8+cond_ew32_max",
    "env8+cond_ew8_max",
    "env8",
    "env4",
    "env8+hidden_tx",
    "env8+hidden_ux",
    "env8+spe_ew8",
    "env8+dyn_ew8",
)
SMOOTH_ON = ("env8", "env8+hidden_tx", "env8+resid8_tx", "env8+spe_ew8")
POST: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "hyst0.7": lambda r: hysteresis(r, 0.7),
    "hyst0.5": lambda r: hysteresis(r, 0.5),
    "minrun3": lambda r: min_run(r, 3),
    "minrun8": lambda r: min_run(r, 8),
}
POST_ON = (
    "env32",
    "env16",
    "env8",
    "env4",
    "env8+hidden_tx",
    "env8+hidden_ux",
    "env8+resid8_tx",
    "env8+resid8_ux",
    "env8+spe_ew8",
    "env8+spe_ew8+resid8_tx",
    "env8+hidden_ux+resid8_ux",
    "env8+cond_ew8_max",
    "env8+cond_ew32_max",
    "env8+cond_ew32_t2",
    "env8+cond_max",
    "env8+cond_ew32_max+hidden_tx",
    "env8+cond_ew32_max+resid8_tx",
    "env8+cond_ew32_max+resid8_ux",
    "env8+dyn",
    "env8+dyn_ew8",
    "env8+dyn_ew8+hidden_tx",
    "env8+dyn_ew8+resid8_tx",
)


@dataclass(frozen=True)
class _Record:
    key: str
    time: float
    values: tuple[float, ...]


def product_envelope(u: Cached, window: int) -> np.ndarray:
    """The product's own envelope code at ``window``: ``fit_envelope`` on the unit's normal rows, then
    ``Envelope.ratios``/``scores`` over its test rows from a fresh EW state (as `rnnwatch score` runs a new
    stream), in units of the default threshold 0.99. This is what ``EnvelopeParams(window=...)`` would ship."""
    x = u.arrays["values"]
    records = [_Record(u.name, float(t), tuple(v)) for t, v in enumerate(x[: u.n].tolist())]
    envelope = fit_envelope(records, EnvelopeParams(window=window))
    test = np.ascontiguousarray(x[u.n :])
    m = test.shape[0]
    ew = np.zeros((1, 2 * x.shape[1] + 1))
    zeros, ok = np.zeros(m, dtype=np.int64), np.ones(m, dtype=bool)
    return np.asarray(
        envelope.scores(training_ratios(envelope, ew, zeros, zeros, ok, test)) / envelope.params.alarm_score
    )


def candidates(u: Cached) -> dict[str, np.ndarray]:
    """Bases, combinations, post-processed variants and the product's own score, over the test rows only."""
    r = base_candidates(u)
    for name, parts in COMBOS.items():
        if all(p in r for p in parts):
            r[name] = ratio(np.max(np.stack([r[p] for p in parts]), axis=0), u)
    for base in SMOOTH_ON:
        if base in r:
            r[f"{base}~s4"] = ratio(ewma(r[base], 4), u)
    for base in LOWER_CUT_ON:
        if base in r:
            for q in (0.99, 0.98):
                r[f"{base}@q{q}"] = ratio(r[base], u, q)
    lowered = tuple(f"{b}@q{q}" for b in LOWER_CUT_ON for q in (0.99, 0.98))
    for base in POST_ON + tuple(f"{b}~s4" for b in SMOOTH_ON) + lowered:
        if base in r:
            for tag, fn in POST.items():
                r[f"{base}|{tag}"] = fn(r[base])
    out = {k: v[u.n :] for k, v in r.items()}
    out["product"] = u.arrays["product"]
    for w in (32, 8):
        out[f"product_envelope_w{w}"] = product_envelope(u, w)
    return out


# ---------------------------------------------------------------------------------------------- metrics
def metrics(scores: list[np.ndarray], units: Sequence[Cached], kinds: Sequence[str]) -> dict[str, float]:
    """Pooled pointwise / event metrics at cut 1.0, the label-chosen best cut, pointwise recall per kind."""
    score = np.concatenate(scores)
    labels = np.concatenate([(u.labels > 0).astype(np.int64) for u in units])
    events, offset = [], 0
    for u in units:
        events += [(k, s + offset, e + offset) for k, s, e in u.events]
        offset += u.labels.shape[0]
    flag = score >= 1.0
    out = {**pointwise(flag, labels), **eventwise(flag, events, labels)}
    after = np.zeros(labels.shape[0], dtype=bool)  # normal rows within AFTER rows of a fault's end
    for _, _, e in events:
        after[e : e + AFTER] = True
    false = flag & (labels == 0)
    out["fa_after_share"] = float(np.sum(false & after) / max(np.sum(false), 1))
    out["after_base"] = float(np.sum(after & (labels == 0)) / max(np.sum(labels == 0), 1))  # all normal rows
    binary = len(np.unique(score)) <= 2
    out["best_f1"] = out["f1"] if binary else pointwise(score >= best_threshold(score, labels), labels)["f1"]
    for k in kinds:
        rows = np.concatenate([np.arange(s, e) for kk, s, e in events if kk == k] or [np.empty(0, dtype=np.int64)])
        out["prec_" + k] = float(flag[rows].mean()) if rows.size else float("nan")  # pointwise recall of kind k
    return out


def _worst_units(scores: list[np.ndarray], units: Sequence[Cached], top: int = 3) -> str:
    """The units with the most false-alarm rows, their share of all of them, the rate without them."""
    fa = np.array([np.sum((s >= 1.0) & (u.labels == 0)) for s, u in zip(scores, units, strict=True)])
    normal = np.array([np.sum(u.labels == 0) for u in units])
    worst = np.argsort(-fa)[:top]
    rest = (fa.sum() - fa[worst].sum()) / max(normal.sum() - normal[worst].sum(), 1)
    names = ", ".join(f"{units[i].name} {fa[i] / normal[i]:.2f}" for i in worst)
    share = fa[worst].sum() / max(fa.sum(), 1)
    return f"{top} units with most false alarms ({names}) carry {share:.2f} of them; rest {rest:.3f}"


def report(folder: Path, kinds: Sequence[str], title: str) -> tuple[str, dict[str, dict[str, float]]]:
    """One table per benchmark (sorted by pointwise F1 among candidates with <= 15 % false alarms first)."""
    units = load_cache(folder)
    per: dict[str, list[np.ndarray]] = {}
    for u in units:
        for name, s in candidates(u).items():
            per.setdefault(name, []).append(s)
    got = {name: metrics(s, units, kinds) for name, s in per.items() if len(s) == len(units)}
    order = sorted(got, key=lambda n: (got[n]["false_alarm"] > 0.15, -got[n]["f1"]))
    head = ("f1", "false_alarm", "missed", "event_f1", "best_f1", "fa_after_share")
    lines = [f"{title}: {len(units)} units, cut = held-out normal {QUANTILE} quantile; best_f1 label-chosen"]
    lines.append(f"{'candidate':<30}" + "".join(f"{c[:12]:>13}" for c in head))
    lines += [f"{n:<30}" + "".join(f"{got[n][c]:>13.3f}" for c in head) for n in order]
    base = got["product"]["after_base"]
    lines.append(f"normal rows within {AFTER} rows after a fault (base rate of fa_after_share): {base:.3f}")
    for name in CHOSEN:
        lines.append(f"{name}: " + _worst_units(per[name], units))
    lines.append("")
    lines.append(f"{'pointwise recall per kind':<30}" + "".join(f"{k[:11]:>12}" for k in kinds))
    lines += [f"{n:<30}" + "".join(f"{got[n].get('prec_' + k, float('nan')):>12.2f}" for k in kinds) for n in order]
    return "\n".join(lines), got


def main(argv: list[str] | None = None) -> int:
    """``collect`` (train + passes, cached) or ``report`` (every candidate's tables and a RESULT line)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("phase", choices=("collect", "report"))
    parser.add_argument("--split", choices=("tune", "report"), default="tune")
    parser.add_argument("--seeds", type=int, default=8, help="rig sites of the split")
    parser.add_argument("--fleet-seeds", type=int, default=4, help="fleet seeds of the split")
    parser.add_argument("--only", choices=("rigs", "fleet"), default=None)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = args.cache / args.split
    if args.phase == "collect":
        with tempfile.TemporaryDirectory(prefix="rnnwatch-dprobe-") as tmp:
            if args.only in (None, "rigs"):
                collect_rigs(rig_seeds(args.split, args.seeds), out, Path(tmp) / "rigs")
            if args.only in (None, "fleet"):
                collect_fleet(fleet_seeds(args.split, args.fleet_seeds), out, Path(tmp) / "fleet")
        print(f"RESULT phase=collect split={args.split} seconds={time.perf_counter() - start:.1f}")
        return 0
    result = []
    for bench, kinds in (("rigs", FAULTS), ("fleet", KINDS)):
        if args.only not in (None, bench) or not (out / bench).is_dir():
            continue
        text, got = report(out / bench, kinds, f"{bench} {args.split}")
        print(text + "\n")
        for name in CHOSEN:
            m = got[name]
            result.append(
                f"{bench}_{name}_point_f1={m['f1']:.3f} {bench}_{name}_fa={m['false_alarm']:.3f} "
                f"{bench}_{name}_event_f1={m['event_f1']:.3f}"
            )
    print("RESULT " + " ".join(result) + f" seconds={time.perf_counter() - start:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
