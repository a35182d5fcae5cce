"""Issue 16: the window encoder-decoder (``rnncore.training.seq2seq``) as a detector on the rigs and the fleet.

Bench-side only (no product change), on the units cached by ``bench/detector_probes.py collect`` (the rig sites'
and fleets' normal and test rows, labels and events; TUNE and REPORT seeds as there). Per rig site (3 rigs) and
per fleet group (same seed and feature count), as the product trains one model per site / per width:

* every unit is normalised by the mean and standard deviation of its fit rows (``WARMUP .. WARMUP + 0.7 (n -
  WARMUP)`` of its normal rows; fixed, never updated: the finding of bench/DETECTOR_FINDINGS.md);
* the encoder-decoder is trained on the windows of the first ``NET_SHARE`` of every unit's fit rows (teacher
  forcing, then run free), normal rows only;
* its per-event reconstruction-error vector (``point``: the newest event's error; ``window``: log mean square
  error per feature over the window; ``both``) is scored by its Mahalanobis distance under a Gaussian fitted on
  the windows of the rest of the fit rows (not trained on), and cut at the 0.995 quantile of that score on the
  held-out normal rows (the envelope's rule; no labels). Test rows are scored as a fresh stream: the first
  ``W - 1`` test rows have no full window and score 0.

Compared in the same run with the envelope at the product's window 8 (``env8``, the probes' version over normal +
test rows, and ``product_envelope_w8``: the product's own ``fit_envelope``/``Envelope.ratios`` over the test rows,
what `rnnwatch score` runs today with its network adding nothing to the flags, bench/ABLATION), alone and as the
max of ratios (``s2s+env8`` recut on the held-out rows; ``s2s|product`` = max with the product envelope's
ratio, no recut, since the product's scores exist only for the test rows). ``product_w32_cached`` is the product's
own score as collected (window 32: the cache predates the window-8 change).

``ln``: a 2-layer GRU forecaster (Gaussian head, fixed normalisation) with and without LayerNorm between the layers,
validation NLL on the same Gaussian rows. Seeds and splits as the probes; choose on TUNE, run REPORT once.

    nice -n 10 .venv/bin/python bench/seq2seq.py run --split tune --window 32
    nice -n 10 .venv/bin/python bench/seq2seq.py report --split tune
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from detector_probes import (
    CACHE,
    FIT_FRACTION,
    QUANTILE,
    WARMUP,
    Cached,
    _mean_icov,
    load_cache,
    metrics,
    product_envelope,
    ratio,
    t2,
)
from machine import cpu_model

from rnncore.stages.envelope import _features as ew_features
from rnncore.training.seq2seq import Seq2SeqConfig, Stack, reconstruction_errors, train_autoencoder
from stream.evaluation.fleet.generator import KINDS
from stream.evaluation.rigs.generator import FAULTS

NET_SHARE = 0.85  # of each unit's fit rows: the network's training windows; the rest fit the error Gaussian
OUT = Path(tempfile.gettempdir()) / "rnnwatch-seq2seq"
REDUCTIONS = ("point", "window", "both")


@dataclass(frozen=True)
class Chosen:
    """The configuration and error reduction ``bench/ablation.py`` runs (chosen on TUNE, BENCHMARKS.md)."""

    config: Seq2SeqConfig
    reduction: str


CHOSEN = Chosen(Seq2SeqConfig(window=16), "both")  # fleet TUNE (BENCHMARKS.md); rigs W=16 not run


def groups(units: Sequence[Cached]) -> dict[str, list[Cached]]:
    """One model per rig site (``siteN-rigM``) and per fleet seed and width (``sN-uM``), as the product trains."""
    out: dict[str, list[Cached]] = {}
    for u in units:
        out.setdefault(f"{u.name.split('-')[0]}f{u.arrays['values'].shape[1]}", []).append(u)
    return out


def fit_rows(n: int) -> slice:
    """The reference rows of a unit with ``n`` normal rows (the envelope's and the probes' split)."""
    return slice(WARMUP, WARMUP + int((n - WARMUP) * FIT_FRACTION))


def split_rows(n: int) -> tuple[slice, slice, slice]:
    """(network training rows, error-Gaussian rows, cut rows) of ``n`` normal rows: the first ``NET_SHARE`` of
    the fit rows, the rest of them, then the held-out normal rows."""
    fit = fit_rows(n)
    cut = fit.start + int((fit.stop - fit.start) * NET_SHARE)
    return slice(fit.start, cut), slice(cut, fit.stop), slice(fit.stop, n)


def reduce(errors: np.ndarray, how: str) -> np.ndarray:
    """Per-event error vector from the window errors [T, W, F]: ``point`` [T, F], ``window`` [T, F], ``both``."""
    point = errors[:, -1]
    window = np.log(np.mean(errors.astype(np.float64) ** 2, axis=1) + 1e-6)
    return {"point": point, "window": window, "both": np.hstack([point, window])}[how]


def mahalanobis(features: np.ndarray, ref_rows: slice) -> np.ndarray:
    """Squared Mahalanobis distance of every row under the Gaussian of ``ref_rows`` (NaN rows -> 0)."""
    f = np.asarray(features, dtype=np.float64)
    mu, icov = _mean_icov(f[ref_rows])
    d = np.nan_to_num(f - mu)
    return np.asarray(np.einsum("ij,jk,ik->i", d, icov, d))


Ratios = dict[str, np.ndarray]


def fit_score(normals: Sequence[np.ndarray], tests: Sequence[np.ndarray], config: Seq2SeqConfig,
              reductions: Sequence[str] = REDUCTIONS) -> tuple[list[Ratios], dict[str, float]]:  # fmt: skip
    """The seq2seq detector on one group of units (one model for all): per unit and reduction, the ratio of the
    score to its own cut over the normal rows then the test rows (>= 1 flags), and training facts.

    No labels: normalisation from each unit's fit rows, network on the first ``NET_SHARE`` of them, the error
    Gaussian on the rest, the cut at the 0.995 quantile of the held-out normal rows. Test rows run as a fresh
    stream (the first ``W - 1`` score 0)."""
    torch.set_num_threads(1)
    zs, splits = [], []
    for normal, test in zip(normals, tests, strict=True):
        ref = normal[fit_rows(normal.shape[0])]
        mean, sd = ref.mean(axis=0), ref.std(axis=0) + 1e-9
        zs.append(((normal - mean) / sd, (test - mean) / sd))
        splits.append(split_rows(normal.shape[0]))
    config = replace(config, n_features=normals[0].shape[1])
    started = time.perf_counter()
    model, history = train_autoencoder([zn[s[0]].astype(np.float32) for (zn, _), s in zip(zs, splits, strict=True)],
                                       config)  # fmt: skip
    facts = {"train_seconds": time.perf_counter() - started, "train_mse": history[-1]}
    out, mse = [], []
    for (zn, zt), (_, gauss, held) in zip(zs, splits, strict=True):
        errors = np.concatenate([reconstruction_errors(model, zn.astype(np.float32)),
                                 reconstruction_errors(model, zt.astype(np.float32))])  # fmt: skip
        mse.append(float(np.nanmean(errors[gauss].astype(np.float64) ** 2)))
        n = zn.shape[0]
        got = {}
        for how in reductions:
            score = mahalanobis(reduce(errors, how), gauss)
            score[n : n + config.window - 1] = 0.0  # fresh stream: no full window yet
            got[how] = score / (float(np.quantile(score[held], QUANTILE)) + 1e-12)
        out.append(got)
    facts["validation_mse"] = float(np.mean(mse))
    return out, facts


def run(split: str, config: Seq2SeqConfig, tag: str, only: str | None) -> None:
    """Train one model per group, cache every unit's ratios under ``OUT/split/tag/<bench>/<unit>.npz``."""
    for bench in ("rigs", "fleet"):
        if only not in (None, bench):
            continue
        out = OUT / split / tag / bench
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        for name, group in groups(load_cache(CACHE / split / bench)).items():
            values = [u.arrays["values"] for u in group]
            got, facts = fit_score([v[: u.n] for u, v in zip(group, values, strict=True)],
                                   [v[u.n :] for u, v in zip(group, values, strict=True)], config)  # fmt: skip
            for u, g in zip(group, got, strict=True):
                np.savez(out / f"{u.name}.npz", **g, **{k: np.float64(v) for k, v in facts.items()})
            print(f"{bench} {name}: {facts}", flush=True)
        seconds = time.perf_counter() - started
        print(f"{bench} {tag}: {seconds:.0f} s")
        (out / "config.txt").write_text(f"{asdict(config)}\nseconds {seconds:.1f}\n")


def baselines(u: Cached) -> dict[str, np.ndarray]:
    """The envelope at window 8 over normal + test rows (``env8``), the product's envelope over the test rows."""
    x, fit = u.arrays["values"], u.fit
    env8 = ratio(np.maximum(ratio(t2(x, fit), u), ratio(t2(ew_features(x, 8), fit), u)), u)
    return {"env8": env8, "product_envelope_w8": product_envelope(u, 8), "product_w32_cached": u.arrays["product"]}


BASELINES = ("env8", "product_envelope_w8", "product_w32_cached")


def candidates(u: Cached, base: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The seq2seq statistics alone and as maxima with the envelope, over the test rows."""
    env8, product = base["env8"], base["product_envelope_w8"]
    r: dict[str, np.ndarray] = {}
    for how in REDUCTIONS:
        s = got[how]
        r[f"s2s_{how}"] = s[u.n :]
        r[f"s2s_{how}+env8"] = ratio(np.maximum(s, env8), u)[u.n :]
        r[f"s2s_{how}|product"] = np.maximum(s[u.n :], product)
    return r


def report(split: str, tags: Sequence[str], only: str | None) -> str:
    """One table per benchmark: every tag's candidates plus the envelope baselines, pooled, at the default cut."""
    lines, result = [f"seq2seq {split}: {cpu_model()}"], []
    for bench, kinds in (("rigs", FAULTS), ("fleet", KINDS)):
        if only not in (None, bench):
            continue
        units = load_cache(CACHE / split / bench)
        have = [t for t in tags if (OUT / split / t / bench).is_dir()]
        per: dict[str, list[np.ndarray]] = {}
        for u in units:
            base = baselines(u)
            for name in BASELINES:
                per.setdefault(name, []).append(base[name][-u.labels.shape[0] :])
            for tag in have:
                got = dict(np.load(OUT / split / tag / bench / f"{u.name}.npz"))
                for name, s in candidates(u, base, got).items():
                    per.setdefault(f"{tag}:{name}", []).append(s)
        stats = {n: metrics(s, units, kinds) for n, s in per.items() if len(s) == len(units)}
        head = ("f1", "false_alarm", "missed", "event_f1", "best_f1")
        lines += [f"\n{bench} {split}: {len(units)} units, default cut = held-out 0.995 quantile; best_f1 label-chosen"]
        lines.append(f"{'candidate':<40}" + "".join(f"{c[:12]:>13}" for c in head) + "   min kind recall")
        for n in sorted(stats, key=lambda k: -stats[k]["f1"]):
            m = stats[n]
            rec = {k: m["prec_" + k] for k in kinds if np.isfinite(m.get("prec_" + k, np.nan))}
            low = min(rec, key=rec.__getitem__)
            lines.append(f"{n:<40}" + "".join(f"{m[c]:>13.3f}" for c in head) + f"   {rec[low]:.2f} {low}")
            result.append(f"{bench}_{n}_point_f1={m['f1']:.3f} {bench}_{n}_fa={m['false_alarm']:.3f} "
                          f"{bench}_{n}_event_f1={m['event_f1']:.3f}")  # fmt: skip
        for tag in have:
            mse = [float(np.load(OUT / split / tag / bench / f"{u.name}.npz")["validation_mse"]) for u in units]
            lines.append(f"{tag}: held-out reconstruction mse (free-running, normalised units) {np.mean(mse):.4f}")
    return "\n".join(lines) + "\nRESULT " + " ".join(result)


# ---------------------------------------------------------------------------------------------- layer norm
class StackForecaster(torch.nn.Module):
    """A GRU stack (optional LayerNorm between layers) with the product's Gaussian head: next value (mu, sigma)."""

    def __init__(self, n_features: int, hidden: int, layers: int, layer_norm: bool) -> None:
        super().__init__()
        self.rnn = Stack(n_features, hidden, layers, layer_norm, 0.0)
        self.head = torch.nn.Linear(hidden, 2 * n_features)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.rnn(x)
        mu, raw = self.head(out).chunk(2, dim=-1)
        return mu, torch.nn.functional.softplus(raw) + 1e-3


def forecast_nll(split: str, layers: int, epochs: int, only: str | None) -> str:
    """Validation NLL of the next normalised value with and without LayerNorm, per benchmark (same seeds)."""
    torch.set_num_threads(1)
    lines = [f"layer norm {split}, {layers} layers, H=32, {epochs} epochs: validation NLL per event (lower wins)"]
    for bench in ("rigs", "fleet"):
        if only not in (None, bench):
            continue
        nll: dict[bool, list[float]] = {False: [], True: []}
        for group in groups(load_cache(CACHE / split / bench)).values():
            zs = [_normalised(u) for u in group]
            for ln in (False, True):
                torch.manual_seed(0)
                model = StackForecaster(zs[0].shape[1], 32, layers, ln)
                opt = torch.optim.Adam(model.parameters(), lr=3e-3)
                train = torch.from_numpy(
                    np.concatenate([_chunks(z[split_rows(u.n)[0]], 64) for u, z in zip(group, zs, strict=True)])
                )
                for _ in range(epochs):
                    for lo in torch.randperm(train.shape[0]).split(32):
                        mu, sigma = model(train[lo, :-1])
                        loss = _nll(mu, sigma, train[lo, 1:])
                        opt.zero_grad()
                        loss.backward()
                        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                        opt.step()
                with torch.no_grad():
                    for u, z in zip(group, zs, strict=True):
                        rows = torch.from_numpy(z[: split_rows(u.n)[1].stop])[None]  # run from the first row
                        mu, sigma = model(rows[:, :-1])
                        g = split_rows(u.n)[1]
                        nll[ln].append(float(_nll(mu[:, g.start - 1 :], sigma[:, g.start - 1 :], rows[:, g.start :])))
        wins = sum(a > b for a, b in zip(nll[False], nll[True], strict=True))
        lines.append(f"{bench}: without {np.mean(nll[False]):.4f}, with LayerNorm {np.mean(nll[True]):.4f} "
                     f"({wins} of {len(nll[True])} units lower with)")  # fmt: skip
    return "\n".join(lines)


def _normalised(u: Cached) -> np.ndarray:
    x = u.arrays["values"]
    ref = x[u.fit]
    return ((x - ref.mean(axis=0)) / (ref.std(axis=0) + 1e-9)).astype(np.float32)


def _chunks(z: np.ndarray, length: int) -> np.ndarray:
    n = z.shape[0] // length
    return z[: n * length].reshape(n, length, z.shape[1])


def _nll(mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.mean(0.5 * ((y - mu) / sigma) ** 2 + torch.log(sigma) + 0.9189385)


def main(argv: list[str] | None = None) -> int:
    """``run`` (train and cache one variant), ``report`` (tables and RESULT for the given tags) or ``ln``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("phase", choices=("run", "report", "ln"))
    parser.add_argument("--split", choices=("tune", "report"), default="tune")
    parser.add_argument("--only", choices=("rigs", "fleet"), default=None)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--layer-norm", action="store_true")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--free-fraction", type=float, default=0.25)
    parser.add_argument("--tags", nargs="*", default=None, help="report: the run tags to compare")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    config = Seq2SeqConfig(window=args.window, hidden_size=args.hidden, num_layers=args.layers,
                           layer_norm=args.layer_norm, dropout=args.dropout, epochs=args.epochs,
                           free_fraction=args.free_fraction)  # fmt: skip
    tag = (
        f"w{args.window}h{args.hidden}l{args.layers}{'ln' if args.layer_norm else ''}"
        + (f"d{args.dropout:g}" if args.dropout else "")
        + (f"e{args.epochs}" if args.epochs != 8 else "")
        + (f"f{args.free_fraction:g}" if args.free_fraction != 0.25 else "")
    )
    if args.phase == "run":
        run(args.split, config, tag, args.only)
        print(f"RESULT phase=run tag={tag} split={args.split} seconds={time.perf_counter() - start:.1f}")
    elif args.phase == "ln":
        print(forecast_nll(args.split, args.layers, args.epochs, args.only))
        print(f"RESULT phase=ln seconds={time.perf_counter() - start:.1f}")
    else:
        tags = args.tags or sorted(p.name for p in (OUT / args.split).iterdir())
        print(report(args.split, tags, args.only) + f" seconds={time.perf_counter() - start:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
