"""Issue 16, bench-side only: how the cross-sensor reference's constants were chosen (rig and fleet TUNE seeds).

For each candidate (lag windows of the regressors, smoothing of the residuals, ridge), every rig of the split's sites
and every 8-sensor fleet machine is scored offline: the envelope as the product fits it (raw T² and the 8-event
window T², each cut at the held-out 0.995 quantile of the last 30 % of the normal rows), max'd with the candidate's
cross-sensor term (each feature regressed on the other features' current values and their EW means over the lag
windows, standardised on the fit rows; the EW-smoothed residual vector's T², cut the same way). No network, no
labels in the fit; flags at ratio >= 1, i.e. the default threshold 0.99. The product's own numbers come from
`rnnwatch bench rigs` / `rnnwatch bench fleet`, not from here.

    nice -n 10 .venv/bin/python bench/cross_probes.py --split tune      # ~2 min here

``--levels``: which of the envelope's own terms to keep beside the chosen cross-sensor term (30, 8, 0.1): the
product before 2026-12-04 (raw and window T², the window over ``[m, log v]``), the window alone, or its ``log v``
half alone (what `serve` runs since), with or without the raw term.
"""

from __future__ import annotations

import argparse

import numpy as np

from rnncore.stages.envelope import _features
from stream.evaluation.fleet.generator import make_fleet
from stream.evaluation.rigs.generator import make_site

Q, FIT_FRACTION, WARMUP = 0.995, 0.7, 32
SEEDS = {"tune": (0, 1, 2, 3), "report": (100, 101, 102, 103)}
# (lag windows, smoothing, ridge); None: the envelope alone (the product before the cross-sensor reference)
CANDIDATES = (None, ((), 8, 0.01), ((30,), 8, 0.01), ((30,), 8, 0.1), ((30, 300), 8, 0.01), ((30, 300), 8, 0.1),
              ((30, 300), 16, 0.01), ((10, 100, 1000), 8, 0.01), ((30, 300, 3000), 8, 0.01))  # fmt: skip


def _ewm(x: np.ndarray, window: int) -> np.ndarray:
    out, m = np.empty_like(x), x[0].copy()
    for i in range(len(x)):
        m += max(1.0 / (i + 1), 1.0 / window) * (x[i] - m)
        out[i] = m
    return out


def _split(n: int) -> tuple[slice, slice]:
    fit = slice(WARMUP, WARMUP + int((n - WARMUP) * FIT_FRACTION))
    return fit, slice(fit.stop, n)


def _t2_ratio(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T² of ``test`` and ``train`` rows against the fit rows, in units of the held-out cut."""
    fit, held = _split(len(train))
    cov = np.atleast_2d(np.cov(train[fit], rowvar=False))
    cov += np.eye(len(cov)) * (1e-3 * np.trace(cov) / len(cov) + 1e-9)
    mu, icov = train[fit].mean(0), np.linalg.inv(cov)

    def t2(rows: np.ndarray) -> np.ndarray:
        return np.asarray(np.einsum("ij,jk,ik->i", rows - mu, icov, rows - mu))

    cut = np.quantile(t2(train[held]), Q)
    return t2(test) / cut, t2(train) / cut


def _envelope(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    raw, raw_tr = _t2_ratio(train, test)
    win, win_tr = _t2_ratio(_features(train, 8), _features(test, 8))
    _, held = _split(len(train))
    return np.maximum(raw, win) / np.quantile(np.maximum(raw_tr, win_tr)[held], Q)


def _cross(train: np.ndarray, test: np.ndarray, lags: tuple[int, ...], smooth: int, ridge: float) -> np.ndarray:
    F = train.shape[1]
    design_tr = np.concatenate([train, *(_ewm(train, w) for w in lags)], axis=1)
    design_te = np.concatenate([test, *(_ewm(test, w) for w in lags)], axis=1)
    fit, _ = _split(len(train))
    mu, sd = design_tr[fit].mean(0), design_tr[fit].std(0) + 1e-9
    z_tr, z_te = (design_tr - mu) / sd, (design_te - mu) / sd
    r_tr, r_te = np.empty((len(train), F)), np.empty((len(test), F))
    for j in range(F):
        cols = [c for c in range(design_tr.shape[1]) if c % F != j]
        a = z_tr[fit][:, cols]
        beta = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(len(cols)), a.T @ z_tr[fit, j])
        r_tr[:, j], r_te[:, j] = z_tr[:, j] - z_tr[:, cols] @ beta, z_te[:, j] - z_te[:, cols] @ beta
    return _t2_ratio(_ewm(r_tr, smooth), _ewm(r_te, smooth))[0]


def _units(benchmark: str, seeds: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, list]]:
    if benchmark == "rigs":
        return [(r.normal, r.test, r.labels > 0, r.events) for s in seeds for r in make_site(s)]
    return [(u.train, u.test, u.labels > 0, u.events) for s in seeds for u in make_fleet(s) if u.train.shape[1] > 1]


def _measure(units: list, candidate: tuple | None) -> str:
    tp = fp = fn = normal = 0
    per_kind: dict[str, list[float]] = {}
    for train, test, labels, events in units:
        train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
        ratio = _envelope(train, test)
        if candidate is not None:
            ratio = np.maximum(ratio, _cross(train, test, *candidate))
        flag = ratio >= 1.0
        tp += int((flag & labels).sum())
        fp += int((flag & ~labels).sum())
        fn += int((~flag & labels).sum())
        normal += int((~labels).sum())
        for kind, a, b in events:
            per_kind.setdefault(kind, []).append(float(flag[a:b].mean()))
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    worst = min(per_kind.items(), key=lambda kv: np.mean(kv[1]))
    return f"{2 * p * r / max(p + r, 1e-12):.3f} | {fp / normal:.1%} | {worst[0]} {np.mean(worst[1]):.2f}"


def _levels(train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    """The envelope-term variants of ``--levels``, each max'd with the chosen cross-sensor term."""
    F = train.shape[1]
    _, held = _split(len(train))

    def recut(terms: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        return np.maximum.reduce([t for t, _ in terms]) / np.quantile(np.maximum.reduce([h for _, h in terms])[held], Q)

    ftr, fte = _features(train, 8), _features(test, 8)
    raw, win = _t2_ratio(train, test), _t2_ratio(ftr, fte)
    logv = _t2_ratio(ftr[:, F:], fte[:, F:])
    cross = _cross(train, test, (30,), 8, 0.1)
    return {
        "raw + window [m, log v] (before)": np.maximum(recut([raw, win]), cross),
        "window [m, log v]": np.maximum(recut([win]), cross),
        "log v + raw": np.maximum(recut([logv, raw]), cross),
        "**log v (chosen)**": np.maximum(recut([logv]), cross),
        "none (cross-sensor term alone)": cross,
    }


def _measure_levels(units: list) -> dict[str, str]:
    acc: dict[str, list] = {}
    for train, test, labels, events in units:
        for name, ratio in _levels(np.asarray(train, np.float64), np.asarray(test, np.float64)).items():
            a = acc.setdefault(name, [0, 0, 0, 0, {}])
            flag = ratio >= 1.0
            a[0] += int((flag & labels).sum())
            a[1] += int((flag & ~labels).sum())
            a[2] += int((~flag & labels).sum())
            a[3] += int((~labels).sum())
            for kind, s, e in events:
                a[4].setdefault(kind, []).append(float(flag[s:e].mean()))
    out = {}
    for name, (tp, fp, fn, normal, per_kind) in acc.items():
        p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        worst = min(per_kind.items(), key=lambda kv: np.mean(kv[1]))
        out[name] = f"{2 * p * r / max(p + r, 1e-12):.3f} | {fp / normal:.1%} | {worst[0]} {np.mean(worst[1]):.2f}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=tuple(SEEDS), default="tune")
    parser.add_argument("--levels", action="store_true", help="the envelope-term variants beside the cross term")
    args = parser.parse_args()
    seeds = SEEDS[args.split]
    rigs, fleet = _units("rigs", seeds), _units("fleet", seeds)
    if args.levels:
        by_rigs, by_fleet = _measure_levels(rigs), _measure_levels(fleet)
        print(f"split {args.split}, seeds {seeds}; pointwise F1 | false alarms | lowest rows-flagged share per kind")
        print("| envelope terms beside the cross-sensor term | rigs | fleet machines |\n|---|---|---|")
        for name in by_rigs:
            print(f"| {name} | {by_rigs[name]} | {by_fleet[name]} |")
        return
    print(f"split {args.split}, seeds {seeds}; pointwise F1 | false alarms | lowest rows-flagged share per kind")
    print("| candidate (lags, smoothing, ridge) | rigs | fleet machines |\n|---|---|---|")
    for candidate in CANDIDATES:
        name = candidate or "envelope alone"
        print(f"| {name} | {_measure(rigs, candidate)} | {_measure(fleet, candidate)} |", flush=True)


if __name__ == "__main__":
    main()
