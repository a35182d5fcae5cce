"""`rnnwatch bench fleet`: the product path (train, then score, CLI defaults) and two baselines on seeded fleets.

For every seed of the chosen split, each group of same-width units is trained on its clean ``train`` rows
and scored on its labelled ``test`` rows by :func:`stream.evaluation.fleet.product.train_and_score`; the rolling
z-score and Hotelling T² baselines score the same rows in the same run. The table shows each detector at the
threshold a user gets by default and at the best label-chosen threshold (an upper bound); the last line is
``RESULT rnnwatch_event_f1=... rnnwatch_point_f1=... rnnwatch_false_alarm=... ... seconds=...``.
TUNE seeds are for choosing constants; REPORT seeds are only ever reported.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stream.evaluation.fleet.baselines import ZSCORE_THRESHOLD, hotelling_t2, rolling_zscore, t2_threshold
from stream.evaluation.fleet.generator import REPORT_SEEDS, TUNE_SEEDS, FleetUnit, make_fleet
from stream.evaluation.fleet.product import train_and_score
from stream.evaluation.fleet.report import Pooled, format_table


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """Fleet flags: which seeds and how big a fleet (small by default: ~2-3 minutes on two cores)."""
    parser.add_argument("--split", choices=("tune", "report"), default="tune", help="fleet seeds: tune or report")
    parser.add_argument("--seeds", type=int, default=4, help="how many seeds of the split (up to 8)")
    parser.add_argument("--streams", type=int, default=6, help="single-feature streams per fleet")
    parser.add_argument("--machines", type=int, default=2, help="8-sensor machines per fleet")
    parser.add_argument("--n-train", type=int, default=3000, help="clean training events per unit")
    parser.add_argument("--n-test", type=int, default=4000, help="labelled test events per unit")


def split_seeds(split: str, count: int) -> tuple[int, ...]:
    """The first ``count`` seeds of the TUNE or REPORT split."""
    seeds = TUNE_SEEDS if split == "tune" else REPORT_SEEDS
    if not 1 <= count <= len(seeds):
        raise ValueError(f"--seeds must be between 1 and {len(seeds)}, got {count}")
    return seeds[:count]


def which_sensor(unit: FleetUnit, scores: np.ndarray, shares: np.ndarray, threshold: float) -> tuple[int, int]:
    """(flagged fault rows whose top contribution is a feature the fault touched, flagged fault rows), over the
    unit's one-sensor faults (every kind but ``fault_state``, which touches all)."""
    hits = total = 0
    for (kind, s, e), touched in zip(unit.events, unit.touched, strict=True):
        if kind == "fault_state":
            continue
        rows = np.flatnonzero((scores[s:e] >= threshold) & np.isfinite(shares[s:e]).all(axis=1)) + s
        total += rows.size
        hits += int(np.isin(np.argmax(shares[rows], axis=1), touched).sum())
    return hits, total


def score_fleet(
    units: Sequence[FleetUnit],
    workdir: Path,
    pooled: dict[str, Pooled],
    train_seconds: float | None,
    sensors: list[tuple[int, int]] | None = None,
) -> None:
    """Score one fleet with the product path and the baselines; add every unit to each detector's pool, and each
    multi-feature unit's :func:`which_sensor` counts to ``sensors``."""
    for width in sorted({u.test.shape[1] for u in units}):
        group = [u for u in units if u.test.shape[1] == width]
        run = train_and_score(group, workdir / f"f{width}", train_seconds)
        for u in group:
            if sensors is not None and u.name in run.contributions:
                sensors.append(which_sensor(u, run.scores[u.name], run.contributions[u.name], run.threshold))
            pooled["rnnwatch"].add(u, run.scores[u.name], run.threshold)
            pooled["rolling_zscore"].add(u, rolling_zscore(u), ZSCORE_THRESHOLD)
            pooled["hotelling_t2_raw"].add(u, hotelling_t2(u), t2_threshold(width))


def run_fleet(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table and the RESULT line; 2 on bad flags."""
    start = time.perf_counter()
    try:
        seeds = split_seeds(args.split, args.seeds)
    except ValueError as error:
        print(f"rnnwatch bench fleet: {error}")
        return 2
    pooled = {name: Pooled(name) for name in ("rnnwatch", "rolling_zscore", "hotelling_t2_raw")}
    train_seconds = getattr(args, "train_seconds", None)
    sensors: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory(prefix="rnnwatch-fleet-") as tmp:
        for seed in seeds:
            units = make_fleet(seed, args.streams, args.machines, args.n_train, args.n_test)
            score_fleet(units, Path(tmp) / f"seed{seed}", pooled, train_seconds, sensors)
    rows = []
    for name, pool in pooled.items():
        rows.append((name, "default", pool.measure(1.0)))
        rows.append((name, "best", pool.measure()))
    print(
        f"fleet: {args.split} seeds {list(seeds)}, {args.streams} streams + {args.machines} machines per seed, "
        f"{args.n_train} train / {args.n_test} test events per unit; 'default' = the threshold a user gets "
        "(rnnwatch score --threshold default; z-score 4 sigma; T² chi-square 0.999), 'best' = label-chosen"
    )
    print(format_table(rows))
    hits, flagged = sum(h for h, _ in sensors), sum(t for _, t in sensors)
    if flagged:
        print(
            f"which sensor (multi-feature units, one-sensor faults): the top contribution is the faulty sensor in "
            f"{hits / flagged:.1%} of {flagged} flagged fault rows (chance 1/F)"
        )
    ours = rows[0][2]
    z, t2 = rows[2][2], rows[4][2]
    print(
        f"RESULT rnnwatch_event_f1={ours['event_f1']:.3f} rnnwatch_point_f1={ours['f1']:.3f} "
        f"rnnwatch_false_alarm={ours['false_alarm']:.4f} rnnwatch_best_point_f1={rows[1][2]['f1']:.3f} "
        f"zscore_event_f1={z['event_f1']:.3f} t2_event_f1={t2['event_f1']:.3f} t2_point_f1={t2['f1']:.3f} "
        f"rnnwatch_alarm_f1={ours['alarm_f1']:.3f} t2_alarm_f1={t2['alarm_f1']:.3f} "
        f"seconds={time.perf_counter() - start:.1f}"
    )
    return 0
