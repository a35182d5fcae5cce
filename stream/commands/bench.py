"""`rnnwatch bench nab [--data PATH] [--split tune|report|all]` and `rnnwatch bench fleet [--split tune|report]`.

Both run the product path: `rnnwatch train` then `rnnwatch score` with default settings, through the commands'
own parsers and ``run`` functions, beside baselines in the same run.
``nab``: every NAB file one stream, trained on the files' probationary rows; NAB's baselines beside it; a table
under NAB's protocol and at the product's default threshold, per TUNE / REPORT half and per category, ending with
one line ``RESULT nab_standard=<x> nab_low_fp=<x> nab_low_fn=<x> default_standard=<x> ... seconds=<s>``
(``stream.evaluation.nab_bench``).
``fleet``: seeded synthetic fleets beside a rolling z-score and Hotelling T² (``stream.evaluation.fleet.runner``).
``rigs``: the same path through `rnnwatch evaluate`'s code on seeded 8-sensor pump rigs
(``stream.evaluation.rigs.runner``; takes ``--split``, ``--seeds`` and ``--train-minutes``; sizes: ``bench/rigs.py``).
``experiments``: short experiment files (1,000-1,300 rows, one sustained fault each) on seeded pump testbeds, scored
as `rnnwatch evaluate` does and after training on an anomaly-free recording only
(``stream.evaluation.rigs.experiment_runner``; the same flags; sizes: ``bench/experiments.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, cast

DEFAULT_DATA = os.environ.get("RNNWATCH_NAB_DATA", "../shared/datasets/nab")


class _WithoutSplit:
    """The parser to :func:`add_fleet_arguments`, less its ``--split``: bench's own ``--split`` serves both
    benchmarks (fleet seeds tune|report, default tune; NAB files tune|report|all, default all)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action | None:
        return None if "--split" in names else self.parser.add_argument(*names, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: which benchmark, where its corpus lies, where results go, which split and the training budget."""
    from stream.commands.progress import add_progress_flag
    from stream.commands.training_budget import add_train_minutes_flag
    from stream.evaluation.fleet.runner import add_fleet_arguments

    parser.add_argument("benchmark", choices=["nab", "fleet", "rigs", "experiments"], help="benchmark to run")
    parser.add_argument("--data", type=Path, default=Path(DEFAULT_DATA), help="NAB root (data/, labels/, config/)")
    parser.add_argument("--out", type=Path, default=Path("out/nab"), help="nab: results directory (NAB layout)")
    add_train_minutes_flag(parser, None, "`rnnwatch train --train-minutes` (default: its own early stopping)")
    add_progress_flag(parser)
    add_fleet_arguments(cast(argparse.ArgumentParser, _WithoutSplit(parser)))
    parser.add_argument(
        "--split",
        choices=("tune", "report", "all"),
        default=None,
        help="fleet: TUNE or REPORT seeds (default tune); nab: TUNE or REPORT files by name hash, or all (default)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="nab: run rnnwatch only")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="nab: PNG of the worst files at the default threshold (values, forecast band, labelled windows, true "
        "and false flags, score and threshold; needs matplotlib)",
    )
    parser.add_argument("--plot-files", type=int, default=4, help="nab --plot: how many files")
    parser.add_argument(
        "--bidirectional",
        action="store_true",
        help="refused: NAB forbids look-ahead, bidirectional models are for `rnnwatch score --bidirectional` only",
    )


def _seeded_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with a fleet or rigs run's sizes (before minutes of training), or None."""
    from stream.evaluation.fleet.runner import split_seeds

    try:
        split_seeds(args.split, args.seeds)
    except ValueError as error:
        return str(error)
    small = [f"--{n.replace('_', '-')}" for n in ("streams", "machines", "n_train", "n_test") if getattr(args, n) < 1]
    if small:
        return f"{', '.join(small)} must be positive (sizes >= 1)"
    return None


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns 0, or 2 with a message on bad flags or an unreadable corpus."""
    from stream.commands import progress
    from stream.commands.training_budget import budget_problem

    if (problem := budget_problem(args.train_minutes)) is not None:
        print(f"rnnwatch bench {args.benchmark}: {problem}", file=sys.stderr)
        return 2
    # The runners take the budget in seconds (``args.train_seconds``); the flag is in minutes, as everywhere.
    args.train_seconds = None if args.train_minutes is None else 60.0 * args.train_minutes
    with progress.quiet(args.no_progress):  # else the bars of the train and score runs, on a terminal
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.benchmark in ("fleet", "rigs", "experiments"):  # seeded benchmarks: one split at a time, TUNE unless told
        if args.plot is not None:
            print(
                f"rnnwatch bench {args.benchmark}: --plot is for nab (fleet, rigs and experiments print tables)",
                file=sys.stderr,
            )
            return 2
        if args.split == "all":
            print(
                f"rnnwatch bench {args.benchmark}: --split is tune or report (seeds are never pooled)", file=sys.stderr
            )
            return 2
        args.split = args.split or "tune"
        problem = _seeded_problem(args)
        if problem:
            print(f"rnnwatch bench {args.benchmark}: {problem}", file=sys.stderr)
            return 2
        if args.benchmark == "fleet":
            from stream.evaluation.fleet.runner import run_fleet

            return run_fleet(args)
        if args.benchmark == "experiments":
            from stream.evaluation.rigs.experiment_runner import run_experiments_command

            return run_experiments_command(args)
        from stream.evaluation.rigs.runner import run_rigs_command

        return run_rigs_command(args)
    if getattr(args, "bidirectional", False):
        print(
            "rnnwatch bench nab: --bidirectional is refused: NAB forbids look-ahead and a bidirectional model scores "
            "each event with later events; NAB runs causal models only (rescore offline with "
            "`rnnwatch score --bidirectional`)",
            file=sys.stderr,
        )
        return 2
    if args.plot is not None:
        from stream.evaluation.user_plot import have_matplotlib

        if args.plot.suffix.lower() != ".png" or args.plot_files < 1 or not have_matplotlib():
            print("rnnwatch bench nab: --plot takes a .png path and --plot-files >= 1, and needs matplotlib "
                  "(pip install 'rnnwatch[demo]')", file=sys.stderr)  # fmt: skip
            return 2
    if not (args.data / "data").is_dir() or not (args.data / "labels").is_dir():
        print(
            f"rnnwatch bench nab: {args.data} is not a NAB checkout (no data/ and labels/ in it): give --data PATH to "
            "one (git clone https://github.com/numenta/NAB) or set RNNWATCH_NAB_DATA",
            file=sys.stderr,
        )
        return 2
    from stream.evaluation.nab_bench import run_nab

    return run_nab(args)
