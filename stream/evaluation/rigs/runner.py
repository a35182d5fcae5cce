"""The rig benchmark: seeded sites of pump rigs written as `rnnwatch evaluate` files, scored by its path.

For every seed of the chosen split, the site's rigs are written as one labelled test file and one normal file
per rig (``data/<rig>.csv``, ``normal/<rig>.csv``: ``time``, the 8 sensors, ``fault``), read back by
:func:`stream.evaluation.user_data.load_user_data` and scored by :func:`stream.evaluation.user_eval.score_files`
(`rnnwatch train` on the normal files, `rnnwatch score` on the test files, CLI defaults): exactly what
`rnnwatch evaluate --data data --normal normal --label-column fault` runs. A per-sensor rolling z-score and a
Hotelling T² of raw values fitted on each rig's normal file score the same rows in the same run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stream.evaluation.fleet.baselines import ZSCORE_THRESHOLD, hotelling_t2, rolling_zscore, t2_threshold
from stream.evaluation.fleet.generator import FleetUnit
from stream.evaluation.rigs.generator import FAULTS, REPORT_SEEDS, SENSORS, TUNE_SEEDS, Rig, make_site
from stream.evaluation.user_data import EvalFile, load_user_data
from stream.evaluation.user_eval import score_files
from stream.evaluation.user_report import Scored, measure, pool, scored

DETECTORS: tuple[str, ...] = ("rnnwatch", "rolling_zscore", "hotelling_t2_raw")


def add_rig_arguments(parser: argparse.ArgumentParser) -> None:
    """Rig flags: which seeds, how many rigs per site, recording lengths, the training budget."""
    parser.add_argument("--split", choices=("tune", "report"), default="tune", help="site seeds: tune or report")
    parser.add_argument("--seeds", type=int, default=8, help="how many seeds of the split (up to 8)")
    parser.add_argument("--rigs", type=int, default=3, help="rigs per site (one model per site)")
    parser.add_argument("--n-normal", type=int, default=6000, help="rows of each rig's normal recording")
    parser.add_argument("--n-test", type=int, default=7000, help="rows of each rig's labelled test recording")
    parser.add_argument("--train-seconds", type=float, default=None, help="training budget (default: train's own)")


def write_site(rigs: Sequence[Rig], root: Path) -> tuple[Path, Path]:
    """``root/data/<rig>.csv`` (time, sensors, fault) and ``root/normal/<rig>.csv`` (time, sensors)."""
    data, normal = root / "data", root / "normal"
    data.mkdir(parents=True, exist_ok=True)
    normal.mkdir(parents=True, exist_ok=True)
    for rig in rigs:
        for path, times, values, labels in (
            (data / f"{rig.name}.csv", rig.times, rig.test, rig.labels),
            (normal / f"{rig.name}.csv", rig.normal_times, rig.normal, None),
        ):
            with path.open("w", newline="") as handle:
                table = csv.writer(handle)
                table.writerow(["time", *SENSORS, *([] if labels is None else ["fault"])])
                for i, (t, row) in enumerate(zip(times.tolist(), values.tolist(), strict=True)):
                    tail = [] if labels is None else [int(labels[i])]
                    table.writerow([f"{t:.3f}", *(f"{v:.6g}" for v in row), *tail])
    return data, normal


def baseline_scores(f: EvalFile) -> dict[str, Scored]:
    """The two baselines on one file, each divided by its own default cut (4 sigma; chi-square 0.999)."""
    unit = FleetUnit(f.key, f.train_values, f.values, f.labels)
    return {
        "rolling_zscore": scored(f.key, f.times, f.labels, rolling_zscore(unit), ZSCORE_THRESHOLD),
        "hotelling_t2_raw": scored(f.key, f.times, f.labels, hotelling_t2(unit), t2_threshold(f.values.shape[1])),
    }


def score_site(rigs: Sequence[Rig], root: Path, train_seconds: float | None) -> dict[str, list[Scored]]:
    """Every detector's scored rigs for one site; events carry their fault kind (runs of label 1 otherwise)."""
    data, normal = write_site(rigs, root)
    files = load_user_data(data, "fault", "time", normal)
    kinds = {r.name: r.events for r in rigs}
    out: dict[str, list[Scored]] = {name: [] for name in DETECTORS}
    for s in score_files(files, root / "work", train_seconds):
        out["rnnwatch"].append(dataclasses.replace(s, events=kinds[s.name]))
    for f in files:
        for name, s in baseline_scores(f).items():
            out[name].append(dataclasses.replace(s, events=kinds[f.key]))
    return out


def split_seeds(split: str, count: int) -> tuple[int, ...]:
    """The first ``count`` seeds of the TUNE or REPORT split."""
    seeds = TUNE_SEEDS if split == "tune" else REPORT_SEEDS
    if not 1 <= count <= len(seeds):
        raise ValueError(f"--seeds must be between 1 and {len(seeds)}, got {count}")
    return seeds[:count]


HEAD = (
    "f1",
    "false_alarm",
    "false_alarm_before",
    "false_alarm_after",
    "missed",
    "event_precision",
    "event_recall",
    "event_f1",
    "alarm_precision",
    "alarm_f1",
    "delay_seconds",
    "false_runs_per_hour",
    "best_f1",
)


def row_recall(s: Scored, cut: float = 1.0) -> dict[str, float]:
    """Share of each fault kind's rows flagged at ``cut`` (``rows_<kind>``): which faults are found only in part."""
    flag = s.score >= cut
    hit: dict[str, list[float]] = {}
    for kind, start, end in s.events:
        hit.setdefault(kind, []).append(float(flag[start:end].sum()))
        hit.setdefault("_n_" + kind, []).append(float(end - start))
    return {f"rows_{k}": sum(hit[k]) / sum(hit["_n_" + k]) for k in FAULTS if k in hit}


def format_table(rows: Sequence[tuple[str, dict[str, float]]]) -> str:
    """Headline metrics per detector at its default cut, then recall per fault kind (events, then rows)."""
    short = {"false_alarm_before": "fa_before", "false_alarm_after": "fa_after"}  # normal rows before / after a fault
    lines = [f"{'detector':<20}" + "".join(f"{short.get(c, c)[:12]:>13}" for c in HEAD)]
    lines += [f"{n:<20}" + "".join(f"{m.get(c, float('nan')):>13.3f}" for c in HEAD) for n, m in rows]
    lines += ["", f"{'recall per fault':<20}" + "".join(f"{k[:12]:>13}" for k in FAULTS)]
    lines += [f"{n:<20}" + "".join(f"{m.get('recall_' + k, float('nan')):>13.2f}" for k in FAULTS) for n, m in rows]
    lines += ["", f"{'rows flagged':<20}" + "".join(f"{k[:12]:>13}" for k in FAULTS)]
    lines += [f"{n:<20}" + "".join(f"{m.get('rows_' + k, float('nan')):>13.2f}" for k in FAULTS) for n, m in rows]
    return "\n".join(lines)


def run_rigs(args: argparse.Namespace, workdir: Path) -> tuple[str, dict[str, dict[str, float]]]:
    """Generate, score and pool every seed; returns (the printed report, metrics per detector)."""
    start = time.perf_counter()
    seeds = split_seeds(args.split, args.seeds)
    pooled: dict[str, list[Scored]] = {name: [] for name in DETECTORS}
    for seed in seeds:
        rigs = make_site(seed, args.rigs, args.n_normal, args.n_test)
        for name, got in score_site(rigs, workdir / f"site{seed}", args.train_seconds).items():
            pooled[name] += got
    metrics = {name: measure(pool(files, name)) | row_recall(pool(files, name)) for name, files in pooled.items()}
    anomalous = int(sum(np.sum(s.labels) for s in pooled["rnnwatch"]))
    rows = sum(s.labels.shape[0] for s in pooled["rnnwatch"])
    ours, z, t2 = (metrics[n] for n in DETECTORS)
    text = "\n".join(
        [
            f"rigs: {args.split} seeds {list(seeds)}, {args.rigs} rigs per site (8 sensors; {args.n_normal} normal / "
            f"{args.n_test} test rows each), {rows} test rows of which {anomalous} anomalous; at each detector's "
            "default cut (rnnwatch score's threshold; z-score 4 sigma; T² chi-square 0.999); best_f1 = label-chosen "
            "cut, an upper bound; delay in seconds",
            format_table([(n, metrics[n]) for n in DETECTORS]),
            f"RESULT rigs_point_f1={ours['f1']:.3f} rigs_false_alarms={ours['false_alarm']:.4f} "
            f"rigs_event_f1={ours['event_f1']:.3f} rigs_missed={ours['missed']:.3f} "
            f"rigs_best_point_f1={ours['best_f1']:.3f} zscore_point_f1={z['f1']:.3f} "
            f"t2_point_f1={t2['f1']:.3f} t2_false_alarms={t2['false_alarm']:.4f} "
            f"rigs_alarm_f1={ours['alarm_f1']:.3f} t2_alarm_f1={t2['alarm_f1']:.3f} "
            f"seconds={time.perf_counter() - start:.1f}",
        ]
    )
    return text, metrics


def run_seeded_command(
    name: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace, Path], tuple[str, Any]],
    args: argparse.Namespace,
) -> int:
    """`rnnwatch bench NAME`: ``--split``, ``--seeds`` and ``--train-seconds`` from the bench flags, the sizes at
    ``add_arguments``' defaults; prints ``run``'s report; 2 with a one-line message on bad flags."""
    defaults = argparse.ArgumentParser()
    add_arguments(defaults)
    bench_args = defaults.parse_args(["--split", args.split, "--seeds", str(args.seeds)])
    bench_args.train_seconds = getattr(args, "train_seconds", None)
    try:
        split_seeds(bench_args.split, bench_args.seeds)
    except ValueError as error:
        print(f"rnnwatch bench {name}: {error}")
        return 2
    with tempfile.TemporaryDirectory(prefix=f"rnnwatch-{name}-") as tmp:
        text, _ = run(bench_args, Path(tmp))
    print(text)
    return 0


def script_main(
    name: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace, Path], tuple[str, Any]],
    argv: list[str] | None,
) -> int:
    """``bench/NAME.py``: ``add_arguments``' flags plus ``--keep DIR`` (write the generated files there instead of a
    temporary directory); prints ``run``'s report."""
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser)
    parser.add_argument("--keep", type=Path, default=None, help="write the generated files here, not in a temp dir")
    args = parser.parse_args(argv)
    if args.keep is not None:
        text, _ = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix=f"rnnwatch-{name}-") as tmp:
            text, _ = run(args, Path(tmp))
    print(text)
    return 0


def run_rigs_command(args: argparse.Namespace) -> int:
    """`rnnwatch bench rigs` (:func:`run_seeded_command` with the rig sizes)."""
    return run_seeded_command("rigs", add_rig_arguments, run_rigs, args)
