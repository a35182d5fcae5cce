"""`rnnwatch evaluate --data DIR --label-column NAME`: how well the service would do on your own labelled files.

Each ``.csv`` file under ``--data`` is one stream: a header, a time column (``--time-column``, epoch seconds or
ISO-8601), a 0/1 label column and feature columns (every other column). It trains on each stream's normal rows
(the file of the same name under ``--normal DIR``, else the file's rows before its first label, and then only the
rows from the first label on are scored), with `rnnwatch train`'s defaults, and scores with `rnnwatch score`'s
defaults: the path `rnnwatch serve` runs. It prints per file and pooled: pointwise F1, false-alarm rate, missed
rate, event-wise precision / recall / F1, detection delay at the default threshold, and the label-chosen best
cut's pointwise F1 as an upper bound; it writes the model, the scores, ``per_file.csv`` and a PNG of the worst
files (``--plot``, with matplotlib, the ``demo`` extra: ``rnnwatch score --plot``'s picture with the labelled
rows shaded and flags told true from false) to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

WORST_FILES = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: where the labelled (and normal) files are, their column names, the output directory."""
    from stream.commands.progress import add_progress_flag
    from stream.commands.training_budget import add_train_minutes_flag

    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        help="directory of labelled .csv files, subfolders included (one stream per file; cells separated by "
        "commas, semicolons, tabs or bars)",
    )
    parser.add_argument("--label-column", required=True, help="name of the 0/1 label column (1 = anomalous)")
    parser.add_argument("--time-column", default="time", help="name of the time column (epoch seconds or ISO-8601)")
    parser.add_argument(
        "--normal",
        type=Path,
        default=None,
        help="directory of normal .csv files, one per --data file of the same relative path, to train on (default: "
        "each file's rows before its first label)",
    )
    parser.add_argument(
        "--ignore-columns",
        default="",
        help="comma-separated columns that are neither time, label nor feature (e.g. a second label column such as "
        "a change-point marker: as a feature it would leak the labels)",
    )
    parser.add_argument("--out", type=Path, default=Path("out/evaluate"), help="model, scores, per_file.csv, PNG")
    add_train_minutes_flag(parser, None, "`rnnwatch train --train-minutes` (default: its own early stopping)")
    add_progress_flag(parser)
    parser.add_argument("--worst", type=int, default=WORST_FILES, help="how many of the worst files to plot")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="PNG of the --worst files (lowest pointwise F1): values, forecast band, labelled windows, true and "
        "false flags, score and threshold (default: OUT/worst_files.png, when matplotlib is installed)",
    )


def _write_per_file(path: Path, rows: list[tuple[str, dict[str, float]]]) -> None:
    keys = sorted({k for _, m in rows for k in m})
    with path.open("w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["file", *keys])
        for name, m in rows:
            table.writerow([name, *(f"{m.get(k, float('nan')):.6g}" for k in keys)])


def _plot_worst(
    args: argparse.Namespace,
    results: list[Any],
    per_file: list[tuple[str, dict[str, float]]],
    pooled: dict[str, float],
    lead: dict[str, int],
) -> Path:
    """The --worst files through score's plot: their streams re-scored as `rnnwatch score` scored them (the plot
    needs the forecast), the labelled rows shaded, flags told true (in a labelled row) from false."""
    import numpy as np

    from rnncore.model.artifact import read_metadata
    from stream.commands.config_flags import flag_for
    from stream.evaluation.rescore import rescore
    from stream.evaluation.score_plot import plot_scored

    order = sorted(range(len(results)), key=lambda i: (per_file[i][1]["f1"], -per_file[i][1]["missed"]))
    picked = [results[i] for i in order[: args.worst]]
    threshold = flag_for("anomaly_threshold").default
    recorder = rescore(args.out / "model", [args.out / "test.csv"], [s.name for s in picked], threshold)
    # a file scored from its head (its training rows) is drawn whole: the head unlabelled, before the measured rows
    labelled = {s.name: np.concatenate([np.zeros(lead[s.name], dtype=bool), s.labels > 0]) for s in picked}
    notes = {
        s.name: f"point F1 {m['f1']:.2f}, false alarms {m['false_alarm']:.1%}, missed {m['missed']:.1%}, "
        f"event F1 {m['event_f1']:.2f}"
        for s, (_, m) in ((results[i], per_file[i]) for i in order[: args.worst])
    }
    version = str(read_metadata(args.out / "model").get("version", "?"))
    title = (
        f"rnnwatch evaluate {args.data}: the {len(picked)} file(s) with the lowest pointwise F1 at the default "
        f"threshold {threshold:g}; pooled point F1 {pooled['f1']:.3f}, false alarms {pooled['false_alarm']:.2%}, "
        f"event F1 {pooled['event_f1']:.3f}"
    )
    path = args.plot or args.out / "worst_files.png"
    return plot_scored(path, recorder, [s.name for s in picked], threshold, version, labelled, notes, title)


def run(args: argparse.Namespace) -> int:
    """Evaluate; returns 0, or 2 with a one-line message when the files (or the CLI) refuse."""
    from stream.commands import progress
    from stream.commands.training_budget import budget_problem
    from stream.errors import ProductPathError, UserDataError
    from stream.evaluation.user_data import load_user_data
    from stream.evaluation.user_eval import score_files, without_reference
    from stream.evaluation.user_plot import have_matplotlib
    from stream.evaluation.user_report import format_rows, measure, pool

    if args.worst < 0 or budget_problem(args.train_minutes):
        print("rnnwatch evaluate: --worst must be >= 0 (0: no PNG) and --train-minutes > 0", file=sys.stderr)
        return 2
    if args.plot is not None and (args.plot.suffix.lower() != ".png" or args.worst < 1):
        print("rnnwatch evaluate: --plot takes a .png path and --worst >= 1", file=sys.stderr)
        return 2
    if args.plot is not None and not have_matplotlib():
        print("rnnwatch evaluate: --plot needs matplotlib: pip install 'rnnwatch[demo]'", file=sys.stderr)
        return 2
    try:
        ignore = tuple(name.strip() for name in args.ignore_columns.split(",") if name.strip())
        files = load_user_data(args.data, args.label_column, args.time_column, args.normal, ignore)
        budget = None if args.train_minutes is None else 60 * args.train_minutes
        with progress.quiet(args.no_progress):  # else train's and score's bars, on a terminal
            results = score_files(files, args.out, budget)
    except (UserDataError, ProductPathError) as error:
        print(f"rnnwatch evaluate: {error}", file=sys.stderr)
        return 2
    per_file = [(s.name, measure(s)) for s in results]
    pooled = measure(pool(results))
    own = sum(f.lead_rows > 0 for f in files)
    print(
        f"rnnwatch evaluate: {len(files)} file(s), {len(files[0].features)} feature(s) "
        f"{list(files[0].features)[:8]}; trained on --normal files for {len(files) - own}, on the rows before the "
        f"first label for {own} (those are scored whole, measured from their first label on); `rnnwatch train` and "
        "`rnnwatch score` defaults; best_cut_f1 = label-chosen cut, an upper bound a user does not get"
    )
    print(format_rows([*per_file, ("pooled", pooled)]))
    bare = without_reference(args.out / "model", [f.key for f in files])
    if bare:
        print(
            f"note: {len(bare)} file(s) {bare[:5]} had too few normal rows for the trained envelope (a frozen reference"
            " of normal behaviour): each fits its own from its first scored rows (the forecast alone scores those,"
            " about 330); give them more normal rows"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    _write_per_file(args.out / "per_file.csv", [*per_file, ("pooled", pooled)])
    if not have_matplotlib():
        print("no PNG: matplotlib is not installed (pip install 'rnnwatch[demo]')")
    elif args.worst > 0:
        with progress.quiet(args.no_progress):
            png = _plot_worst(args, results, per_file, pooled, {f.key: f.lead_rows for f in files})
        print(f"wrote {png} (the {min(args.worst, len(results))} file(s) with the lowest pointwise F1)")
    print(
        f"pooled: point_f1={pooled['f1']:.3f} false_alarms={pooled['false_alarm']:.4f} missed={pooled['missed']:.3f} "
        f"event_f1={pooled['event_f1']:.3f} best_cut_point_f1={pooled['best_f1']:.3f}; wrote {args.out}"
    )
    return 0
