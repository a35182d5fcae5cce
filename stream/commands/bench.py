"""`rnnwatch bench nab [--data PATH]` and `rnnwatch bench fleet [--split tune|report]`.

``nab``: rnnwatch and NAB's baselines on the Numenta Anomaly Benchmark; prints a table (normalised NAB score
per profile) and ends with exactly one machine-readable line
``RESULT nab_standard=<x> nab_low_fp=<x> nab_low_fn=<x> seconds=<s>`` for rnnwatch.
``fleet``: `rnnwatch train` then `rnnwatch score` (default settings) on seeded synthetic fleets beside a
rolling z-score and Hotelling T² (``stream.evaluation.fleet.runner``).
``rigs``: the same path through `rnnwatch evaluate`'s code on seeded 8-sensor pump rigs
(``stream.evaluation.rigs.runner``; takes ``--split``, ``--seeds`` and ``--train-seconds``; sizes: ``bench/rigs.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from rnncore.errors import RnnCoreError
from stream.errors import StreamError

logger = logging.getLogger(__name__)

DEFAULT_DATA = os.environ.get("RNNWATCH_NAB_DATA", "../shared/datasets/nab")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: which benchmark, where its corpus lies, where results go and the training budget."""
    from stream.evaluation.fleet.runner import add_fleet_arguments

    parser.add_argument("benchmark", choices=["nab", "fleet", "rigs"], help="benchmark to run")
    parser.add_argument("--data", type=Path, default=Path(DEFAULT_DATA), help="NAB root (data/, labels/, config/)")
    parser.add_argument("--out", type=Path, default=Path("out/nab"), help="nab: results directory (NAB layout)")
    parser.add_argument(
        "--train-seconds",
        type=float,
        default=None,
        help="nab: BPTT budget on the probationary rows (default 0: seeded random weights, which score higher); "
        "fleet: a budget for `rnnwatch train` (default: its own early stopping)",
    )
    add_fleet_arguments(parser)
    parser.add_argument("--no-baselines", action="store_true", help="run rnnwatch only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bidirectional",
        action="store_true",
        help="refused: NAB forbids look-ahead, bidirectional models are for `rnnwatch score --bidirectional` only",
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns 0, or 2 with a message when the corpus cannot be read."""
    if args.benchmark == "fleet":
        from stream.evaluation.fleet.runner import run_fleet

        return run_fleet(args)
    if args.benchmark == "rigs":
        from stream.evaluation.rigs.runner import run_rigs_command

        return run_rigs_command(args)
    from stream.evaluation.nab_data import load_profiles, load_series, load_windows
    from stream.evaluation.rnnwatch_nab import NabRnnSettings, rnnwatch_detectors
    from stream.evaluation.runner import (
        baseline_detectors,
        evaluate,
        format_split_table,
        format_table,
        write_final_results,
        write_results,
    )

    if getattr(args, "bidirectional", False):
        print(
            "rnnwatch bench nab: --bidirectional is refused: NAB forbids look-ahead and a bidirectional model scores "
            "each event with later events; NAB runs causal models only (rescore offline with "
            "`rnnwatch score --bidirectional`)",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    try:
        files = load_series(args.data)
        windows = load_windows(args.data, files)
        profiles = load_profiles(args.data)
    except (RnnCoreError, StreamError) as error:
        print(f"rnnwatch bench nab: {error}", file=sys.stderr)
        return 2
    detectors = {} if args.no_baselines else dict(baseline_detectors())
    ours, info = rnnwatch_detectors(NabRnnSettings(train_seconds=args.train_seconds or 0.0, seed=args.seed))
    detectors.update(ours)  # "rnnwatch" last: the RESULT line reports it
    runs = []
    for name, detector in detectors.items():
        result = evaluate(name, detector, files, windows, profiles)
        write_results(args.out, result, files, windows)
        runs.append(result)
    write_final_results(args.out, runs)
    print(
        f"NAB: {len(files)} files, {sum(f.values.size for f in files)} rows; rnnwatch weights: {info.get('weights')}; "
        f"rnnwatch scoring: {info.get('scoring')}"
    )
    print(format_table(runs, profiles))
    print("the same runs on the two halves of the files split by name hash (crc32 % 2; threshold set per half):")
    print(format_split_table(runs, windows, profiles))
    print(f"results written to {args.out}")
    final = runs[-1].results
    score = {p.name: final[p.name].normalised for p in profiles}
    print(
        f"RESULT nab_standard={score.get('standard', float('nan')):.2f} "
        f"nab_low_fp={score.get('reward_low_FP_rate', float('nan')):.2f} "
        f"nab_low_fn={score.get('reward_low_FN_rate', float('nan')):.2f} "
        f"seconds={time.perf_counter() - start:.1f}"
    )
    return 0
