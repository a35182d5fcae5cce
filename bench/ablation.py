"""Issue 16 ablation: does the trained recurrent network earn its place in what `rnnwatch score` runs?

On the rig benchmark and the fleet, the product path (`rnnwatch train` then `rnnwatch score`, CLI defaults) is
run once; its artifact is then varied on the bench side only and scored again by the same `rnnwatch score`:

* ``trained``: the artifact as trained (the product);
* ``untrained``: the same artifact with seeded random weights (``ModelWeights.random(config, seed=0)``), the same
  envelope;
* ``network_only``: the trained weights without ``envelope.npz`` (`rnnwatch score` then runs the bare Detector);
* ``envelope_only``: the artifact's envelope alone, computed with its public API (``Envelope.ratios``,
  ``AlarmParams.smoothed``, ``Envelope.scores`` over each stream's test rows, the same update the scoring path
  runs), no network;
* ``trained_l2`` / ``trained_l2_dropout``: `rnnwatch train --layers 2` without and with ``--dropout`` (between the
  stacked layers, training only), each scored by the same `rnnwatch score`;
* ``seq2seq``: the window encoder-decoder of ``bench/seq2seq.py`` (``rnncore.training.seq2seq``; one model per
  site / fleet width, normal rows only, its own held-out cut) alone, and ``seq2seq|product``: the max of its ratio
  and the product's score over its threshold (each at its own default cut; not recut: the product scores the
  test rows only).

No product code or default changes. Prints one table per benchmark and one RESULT line.

    nice -n 10 flock /tmp/rnnwatch-bench.lock .venv/bin/python bench/ablation.py [--split report] [--seeds 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
from seq2seq import CHOSEN as SEQ2SEQ_CHOSEN
from seq2seq import fit_score

from rnncore.model.artifact import RESERVED_METADATA, load_artifact, save_artifact
from rnncore.model.envelope_file import load_envelope
from rnncore.model.store import resolve_model_dir
from rnncore.model.weights import ModelWeights
from rnncore.stages.crossfit import cross_ratios
from rnncore.stages.enveloped import AlarmParams
from rnncore.stages.selffit import training_ratios
from stream.commands import score, train
from stream.data.eventlog import read_event_logs
from stream.evaluation.fleet.generator import KINDS, make_fleet
from stream.evaluation.fleet.product import train_and_score
from stream.evaluation.fleet.report import Pooled
from stream.evaluation.product_path import run_cli
from stream.evaluation.rigs.generator import FAULTS, make_site
from stream.evaluation.rigs.runner import score_site, split_seeds
from stream.evaluation.user_report import Scored, measure, pool

VARIANTS = (
    "trained",
    "untrained",
    "network_only",
    "envelope_only",
    "trained_l2",
    "trained_l2_dropout",
    "seq2seq",
    "seq2seq|product",
)
DROPOUT = 0.2  # the ablation's dropout (a common value; not tuned: dropout is off by default)


def score_threshold() -> float:
    """`rnnwatch score`'s default ``--threshold``, read from its own parser."""
    parser = argparse.ArgumentParser()
    score.add_arguments(parser)
    return float(parser.get_default("threshold"))


def variant_artifact(trained: Path, out: Path, variant: str) -> Path:
    """A copy of the trained artifact for ``untrained`` (random weights, same envelope) or ``network_only`` (the
    trained weights, no envelope), written through ``save_artifact`` so the one checksum covers what is there."""
    out.mkdir(parents=True, exist_ok=True)
    source = resolve_model_dir(trained)  # a store: its current version
    weights = load_artifact(source)
    metadata = {k: v for k, v in weights.metadata.items() if k not in set(RESERVED_METADATA) | {"version"}}
    if variant == "untrained":
        shutil.copy(source / "envelope.npz", out / "envelope.npz")  # before model.json: inside its checksum
        save_artifact(out, ModelWeights.random(weights.config, seed=0), {**metadata, "version": "untrained-seed0"})
    else:
        metadata.pop("envelope", None)
        save_artifact(out, weights, {**metadata, "version": "network-only"})
    return out


def score_with(artifact: Path, test_log: Path, out: Path) -> dict[str, np.ndarray]:
    """`rnnwatch score` (its own parser and run, defaults) with ``artifact``; scores per key in time order."""
    scored = out / "scores.jsonl"
    run_cli(score.add_arguments, score.run, ["--logs", str(test_log), "--model", str(artifact), "--out", str(scored)])
    per_key: dict[str, list[float]] = {}
    with scored.open("rb") as handle:
        for line in handle:
            row = orjson.loads(line)
            per_key.setdefault(row["key"], []).append(float(row["score"]))
    return {k: np.asarray(v) for k, v in per_key.items()}


def envelope_only(trained: Path, test_log: Path) -> dict[str, np.ndarray]:
    """The artifact's envelope score per test event (its T² terms and cross-sensor term), no network: one stream at a
    time, in time order."""
    envelope = load_envelope(trained)
    assert envelope is not None, f"{trained} has no envelope"
    records, _ = read_event_logs([test_log])
    by_key: dict[str, list[tuple[float, tuple[float, ...]]]] = {}
    for r in records:
        by_key.setdefault(str(r.key), []).append((float(r.time), tuple(r.values)))
    out = {}
    for key, rows in by_key.items():
        rows.sort(key=lambda row: row[0])
        x = np.array([v for _, v in rows], dtype=np.float64)
        n = x.shape[0]
        ref = int(envelope.refs([key])[0])
        if ref < 0:
            out[key] = np.zeros(n)
            continue
        ew = np.zeros((1, 2 * envelope.n_features + 1))
        ratio = training_ratios(envelope, ew, np.zeros(n, dtype=np.int64), np.full(n, ref), np.ones(n, dtype=bool), x)
        if envelope.cross is not None and envelope.cross.cut[ref] > 0:  # its cross-sensor term, as scoring adds it
            ratio = np.maximum(ratio, cross_ratios(envelope.cross, x, ref, envelope.params.warmup))
        out[key] = envelope.scores(AlarmParams().smoothed(ratio))
    return out


def retrained(workdir: Path, train_log: Path, flags: list[str]) -> Path:
    """`rnnwatch train` (its own parser and run) on the same log with extra ``flags``; the new artifact."""
    out = workdir / "model"
    run_cli(train.add_arguments, train.run, ["--logs", str(train_log), "--out", str(out), "--no-progress", *flags])
    return out


Units = dict[str, tuple[np.ndarray, np.ndarray]]


def variants(workdir: Path, artifact: Path, test_log: Path, train_log: Path | None = None,
             units: Units | None = None) -> dict[str, dict[str, np.ndarray]]:  # fmt: skip
    """Scores per variant (the trained one is rescored too, so all come from the same calls); ``train_log`` adds
    the stacked retrains, ``units`` (name -> (normal rows, test rows)) the seq2seq detector. Every score is in
    units of the default threshold."""
    cut = score_threshold()
    got = {"trained": score_with(artifact, test_log, workdir)}
    for name in ("untrained", "network_only"):
        alt = variant_artifact(artifact, workdir / name, name)
        got[name] = score_with(alt, test_log, workdir / name)
    got["envelope_only"] = envelope_only(artifact, test_log)
    stacked = {"trained_l2": ["--layers", "2"], "trained_l2_dropout": ["--layers", "2", "--dropout", str(DROPOUT)]}
    for name, flags in stacked.items() if train_log is not None else ():
        got[name] = score_with(retrained(workdir / name, train_log, flags), test_log, workdir / name)
    got = {name: {k: v / cut for k, v in scores.items()} for name, scores in got.items()}
    if units is None:
        return got
    names = sorted(units)
    ratios, _ = fit_score([units[n][0] for n in names], [units[n][1] for n in names], SEQ2SEQ_CHOSEN.config,
                          (SEQ2SEQ_CHOSEN.reduction,))  # fmt: skip
    how = SEQ2SEQ_CHOSEN.reduction
    got["seq2seq"] = {n: r[how][units[n][0].shape[0] :] for n, r in zip(names, ratios, strict=True)}
    got["seq2seq|product"] = {n: np.maximum(got["seq2seq"][n], got["trained"][n]) for n in names}
    return got


def rig_ablation(seeds: tuple[int, ...], rigs: int, root: Path) -> dict[str, dict[str, float]]:
    """Every variant pooled over the rig sites of ``seeds``."""
    pooled: dict[str, list[Scored]] = {v: [] for v in VARIANTS}
    for seed in seeds:
        site = root / f"site{seed}"
        rigs_ = make_site(seed, rigs)
        product = score_site(rigs_, site, None)["rnnwatch"]
        work = site / "work"
        rows = {r.name: (r.normal, r.test) for r in rigs_}
        for name, scores in variants(work, work / "model", work / "test.csv", work / "train.csv", rows).items():
            for s in product:  # product scores are score / threshold: the variants' are too
                pooled[name].append(dataclasses.replace(s, score=scores[s.name]))
    return {name: measure(pool(files, name)) for name, files in pooled.items()}


def fleet_ablation(seeds: tuple[int, ...], root: Path) -> dict[str, dict[str, float]]:
    """Every variant pooled over the fleets of ``seeds`` (default sizes: 6 streams + 2 machines)."""
    pooled = {v: Pooled(v) for v in VARIANTS}
    for seed in seeds:
        units = make_fleet(seed)
        for width in sorted({u.test.shape[1] for u in units}):
            group = [u for u in units if u.test.shape[1] == width]
            work = root / f"seed{seed}" / f"f{width}"
            run = train_and_score(group, work)
            rows = {u.name: (u.train, u.test) for u in group}
            for name, scores in variants(work, run.artifact, work / "test.csv", work / "train.csv", rows).items():
                for u in group:
                    pooled[name].add(u, scores[u.name], 1.0)  # scores are in units of the threshold
    return {name: p.measure(1.0) | {"best_f1": p.measure()["f1"]} for name, p in pooled.items()}


def table(title: str, metrics: dict[str, dict[str, float]], kinds: tuple[str, ...]) -> str:
    """One row per variant: headline metrics and the lowest recall over the benchmark's kinds."""
    cols = ("f1", "false_alarm", "missed", "event_f1", "best_f1")
    lines = [title, f"{'variant':<20}" + "".join(f"{c:>13}" for c in cols) + f"{'min kind recall':>28}"]
    for name, m in metrics.items():
        recalls = {k: m["recall_" + k] for k in kinds if "recall_" + k in m}
        worst = min(recalls, key=recalls.__getitem__) if recalls else "-"
        low = f"{recalls.get(worst, float('nan')):.2f} ({worst})"
        lines.append(f"{name:<20}" + "".join(f"{m[c]:>13.3f}" for c in cols) + f"{low:>28}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the ablation on both benchmarks and print the tables and the RESULT line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--split", choices=("tune", "report"), default="tune")
    parser.add_argument("--seeds", type=int, default=4, help="seeds of the split for each benchmark")
    parser.add_argument("--rigs", type=int, default=3, help="rigs per site")
    parser.add_argument("--only", choices=("rigs", "fleet"), default=None, help="run one benchmark only")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    seeds = split_seeds(args.split, args.seeds)
    runs: list[tuple[str, Callable[[Path], dict[str, dict[str, float]]], tuple[str, ...]]] = []
    if args.only in (None, "rigs"):
        runs.append(("rigs", lambda p: rig_ablation(seeds, args.rigs, p), FAULTS))
    if args.only in (None, "fleet"):
        runs.append(("fleet", lambda p: fleet_ablation(seeds, p), KINDS))  # the fleet's splits: the same seeds
    result = []
    with tempfile.TemporaryDirectory(prefix="rnnwatch-ablation-") as tmp:
        for name, fn, kinds in runs:
            metrics = fn(Path(tmp) / name)
            title = f"{name}: {args.split} seeds {list(seeds)}, default threshold (best_f1: label-chosen)"
            print(table(title, metrics, kinds) + "\n")
            for v, m in metrics.items():
                result.append(f"{name}_{v}_point_f1={m['f1']:.3f} {name}_{v}_event_f1={m['event_f1']:.3f}")
    print("RESULT " + " ".join(result) + f" seconds={time.perf_counter() - start:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
