"""The short-experiment benchmark: seeded testbeds (:mod:`stream.evaluation.rigs.experiments`) scored two ways.

Per seed the experiment files are written as `rnnwatch evaluate` files (``data/<name>.csv``: ``time``, the 8
sensors, ``anomaly``) beside the anomaly-free recording (``free/anomaly-free.csv``), then scored by the product
path at the CLI's defaults, two ways a user would:

* ``own``: `rnnwatch evaluate --data data --label-column anomaly` (:func:`score_files`): each file trains on its
  own rows before its first label and is scored from that label on;
* ``free``: `rnnwatch train` on the anomaly-free recording only (its own key, so no file has a training
  reference), `rnnwatch score` on every file whole: each stream fits its own envelope online from its first
  events (:mod:`rnncore.stages.selffit`).

Baselines score the same rows in the same run: a Hotelling T² of raw values fitted on each file's normal head
(chi-square 0.999, 8 dof) and a per-sensor rolling z-score (4 sigma over 100 rows).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stream.evaluation.fleet.baselines import ZSCORE_THRESHOLD, hotelling_t2, rolling_zscore, t2_threshold
from stream.evaluation.fleet.generator import FleetUnit
from stream.evaluation.product_path import ProductPathError, train_and_score_logs
from stream.evaluation.rigs.experiments import FREE_KEY, Experiment, Testbed, make_testbed
from stream.evaluation.rigs.generator import SENSORS
from stream.evaluation.rigs.runner import format_table, row_recall, run_seeded_command, split_seeds
from stream.evaluation.user_data import load_user_data
from stream.evaluation.user_eval import score_files
from stream.evaluation.user_report import Scored, measure, pool, scored

LABEL = "anomaly"
MODES: tuple[str, ...] = ("own", "free")
DETECTORS: tuple[str, ...] = ("rnnwatch", "rolling_zscore", "hotelling_t2_raw")


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: which seeds, how many experiment files per testbed, the anomaly-free length, the training budget."""
    parser.add_argument("--split", choices=("tune", "report"), default="tune", help="testbed seeds: tune or report")
    parser.add_argument("--seeds", type=int, default=8, help="how many seeds of the split (up to 8)")
    parser.add_argument("--experiments", type=int, default=8, help="experiment files per testbed (one model each)")
    parser.add_argument("--n-free", type=int, default=3000, help="rows of the anomaly-free recording")
    parser.add_argument("--train-seconds", type=float, default=None, help="training budget (default: train's own)")


def _write_csv(path: Path, times: np.ndarray, values: np.ndarray, labels: np.ndarray | None) -> None:
    with path.open("w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["time", *SENSORS, *([] if labels is None else [LABEL])])
        for i, (t, row) in enumerate(zip(times.tolist(), values.tolist(), strict=True)):
            tail = [] if labels is None else [int(labels[i])]
            table.writerow([f"{t:.3f}", *(f"{v:.6g}" for v in row), *tail])


def write_testbed(bed: Testbed, root: Path) -> tuple[Path, Path]:
    """``root/data/<experiment>.csv`` (time, sensors, anomaly) and ``root/free/anomaly-free.csv`` (time, sensors)."""
    data, free = root / "data", root / "free"
    data.mkdir(parents=True, exist_ok=True)
    free.mkdir(parents=True, exist_ok=True)
    for e in bed.experiments:
        _write_csv(data / f"{e.name}.csv", e.times, e.values, e.labels)
    _write_csv(free / f"{FREE_KEY}.csv", bed.free_times, bed.free, None)
    return data, free


def _log(path: Path, streams: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """The CLI's event-log format (``key,time,v0,...``), as `rnnwatch evaluate` writes it."""
    with path.open("w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["key", "time", *(f"v{i}" for i in range(len(SENSORS)))])
        for key, times, values in streams:
            for t, row in zip(times.tolist(), values.tolist(), strict=True):
                table.writerow([key, repr(t), *(repr(v) for v in row)])


def _baselines(e: Experiment, first: int) -> dict[str, Scored]:
    """T² (fitted on the file's normal head) and the rolling z-score on the file's rows from ``first`` on."""
    head = e.values[: e.events[0][1]]
    unit = FleetUnit(e.name, head, e.values[first:], e.labels[first:])
    times, labels = e.times[first:], e.labels[first:]
    return {
        "rolling_zscore": scored(e.name, times, labels, rolling_zscore(unit), ZSCORE_THRESHOLD),
        "hotelling_t2_raw": scored(e.name, times, labels, hotelling_t2(unit), t2_threshold(len(SENSORS))),
    }


def _with_kinds(s: Scored, e: Experiment, first: int) -> Scored:
    return dataclasses.replace(s, events=[(k, a - first, b - first) for k, a, b in e.events])


def score_testbed(bed: Testbed, root: Path, train_seconds: float | None) -> dict[str, dict[str, list[Scored]]]:
    """Every mode's and detector's scored files for one testbed."""
    data, _ = write_testbed(bed, root)
    out: dict[str, dict[str, list[Scored]]] = {mode: {name: [] for name in DETECTORS} for mode in MODES}
    by_name = {e.name: e for e in bed.experiments}
    for s in score_files(load_user_data(data, LABEL, "time"), root / "own", train_seconds):
        e = by_name[s.name]
        out["own"]["rnnwatch"].append(_with_kinds(s, e, e.events[0][1]))
    work = root / "free-work"
    work.mkdir(parents=True, exist_ok=True)
    _log(work / "train.csv", [(FREE_KEY, bed.free_times, bed.free)])
    _log(work / "test.csv", [(e.name, e.times, e.values) for e in bed.experiments])
    run = train_and_score_logs(work / "train.csv", work / "test.csv", work, train_seconds)
    for e in bed.experiments:
        score = run.scores.get(e.name)
        if score is None or score.shape[0] != e.labels.shape[0]:
            raise ProductPathError(f"{e.name}: rnnwatch score returned {0 if score is None else score.shape[0]} scores")
        out["free"]["rnnwatch"].append(_with_kinds(scored(e.name, e.times, e.labels, score, run.threshold), e, 0))
    for e in bed.experiments:
        for mode, first in (("own", e.events[0][1]), ("free", 0)):
            for name, s in _baselines(e, first).items():
                out[mode][name].append(_with_kinds(s, e, first))
    return out


def run_experiments(args: argparse.Namespace, workdir: Path) -> tuple[str, dict[str, dict[str, dict[str, float]]]]:
    """Generate, score and pool every seed; returns (the printed report, metrics per mode and detector)."""
    start = time.perf_counter()
    seeds = split_seeds(args.split, args.seeds)
    pooled: dict[str, dict[str, list[Scored]]] = {mode: {name: [] for name in DETECTORS} for mode in MODES}
    for seed in seeds:
        bed = make_testbed(seed, args.experiments, args.n_free)
        for mode, per in score_testbed(bed, workdir / f"bed{seed}", args.train_seconds).items():
            for name, got in per.items():
                pooled[mode][name] += got
    metrics = {
        mode: {n: measure(pool(fs, n)) | row_recall(pool(fs, n)) for n, fs in per.items()}
        for mode, per in pooled.items()
    }
    lines = [
        f"experiments: {args.split} seeds {list(seeds)}, {args.experiments} files per testbed (8 sensors, 1 s, "
        f"1000-1300 rows, one fault each) + an anomaly-free recording of {args.n_free} rows; at each detector's "
        "default cut (rnnwatch score's threshold; z-score 4 sigma; T² chi-square 0.999, fitted on each file's "
        "normal head); best_f1 = label-chosen cut, an upper bound; delay in seconds"
    ]
    what = {
        "own": "each file trains on its head (rows before the first label), scored whole, measured from it (evaluate)",
        "free": "trained on the anomaly-free recording only (another key), every file scored whole",
    }
    for mode in MODES:
        rows = sum(s.labels.shape[0] for s in pooled[mode]["rnnwatch"])
        anomalous = int(sum(np.sum(s.labels) for s in pooled[mode]["rnnwatch"]))
        lines += ["", f"[{mode}] {what[mode]}: {rows} rows, {anomalous} anomalous"]
        lines.append(format_table([(n, metrics[mode][n]) for n in DETECTORS]))
    own, free = metrics["own"], metrics["free"]
    fields = []
    for mode, m in (("own", own), ("free", free)):
        r, t2 = m["rnnwatch"], m["hotelling_t2_raw"]
        fields += [
            f"{mode}_point_f1={r['f1']:.3f}",
            f"{mode}_false_alarms={r['false_alarm']:.4f}",
            f"{mode}_false_alarms_before={r['false_alarm_before']:.4f}",
            f"{mode}_event_f1={r['event_f1']:.3f}",
            f"{mode}_best_point_f1={r['best_f1']:.3f}",
            f"{mode}_t2_point_f1={t2['f1']:.3f}",
            f"{mode}_t2_false_alarms={t2['false_alarm']:.4f}",
            f"{mode}_zscore_point_f1={m['rolling_zscore']['f1']:.3f}",
        ]
    lines.append("RESULT " + " ".join(fields) + f" seconds={time.perf_counter() - start:.1f}")
    return "\n".join(lines), metrics


def run_experiments_command(args: argparse.Namespace) -> int:
    """`rnnwatch bench experiments` (:func:`~stream.evaluation.rigs.runner.run_seeded_command` with its sizes)."""
    return run_seeded_command("experiments", add_experiment_arguments, run_experiments, args)
