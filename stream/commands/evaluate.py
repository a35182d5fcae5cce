"""`rnnwatch evaluate --data DIR --label-column NAME`: how well the service would do on your own labelled files.

Each ``.csv`` file under ``--data`` is one stream: a header, a time column (``--time-column``, epoch seconds or
ISO-8601), a 0/1 label column and feature columns (every other column). It trains on each stream's normal rows
(the file of the same name under ``--normal DIR``, else the file's rows before its first label, and then only the
rows from the first label on are scored), with `rnnwatch train`'s defaults, and scores with `rnnwatch score`'s
defaults: the path `rnnwatch serve` runs. It prints per file and pooled: pointwise F1, false-alarm rate, missed
rate, event-wise precision / recall / F1, detection delay at the default threshold, and the label-chosen best
cut's pointwise F1 as an upper bound; it writes the model, the scores, ``per_file.csv`` and a PNG of the worst
files (with matplotlib, the ``demo`` extra) to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

WORST_FILES = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: where the labelled (and normal) files are, their column names, the output directory."""
    parser.add_argument("--data", required=True, type=Path, help="directory of labelled .csv files (one per stream)")
    parser.add_argument("--label-column", required=True, help="name of the 0/1 label column (1 = anomalous)")
    parser.add_argument("--time-column", default="time", help="name of the time column (epoch seconds or ISO-8601)")
    parser.add_argument(
        "--normal",
        type=Path,
        default=None,
        help="directory of normal .csv files, one per --data file of the same name, to train on (default: each "
        "file's rows before its first label)",
    )
    parser.add_argument("--out", type=Path, default=Path("out/evaluate"), help="model, scores, per_file.csv, PNG")
    parser.add_argument("--max-minutes", type=float, default=None, help="training budget (default: train's own)")
    parser.add_argument("--worst", type=int, default=WORST_FILES, help="how many of the worst files to plot")


def _write_per_file(path: Path, rows: list[tuple[str, dict[str, float]]]) -> None:
    keys = sorted({k for _, m in rows for k in m})
    with path.open("w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["file", *keys])
        for name, m in rows:
            table.writerow([name, *(f"{m.get(k, float('nan')):.6g}" for k in keys)])


def run(args: argparse.Namespace) -> int:
    """Evaluate; returns 0, or 2 with a one-line message when the files (or the CLI) refuse."""
    from stream.errors import ProductPathError, UserDataError
    from stream.evaluation.user_data import load_user_data
    from stream.evaluation.user_eval import score_files, without_reference
    from stream.evaluation.user_plot import have_matplotlib, plot_files
    from stream.evaluation.user_report import format_rows, measure, pool

    try:
        files = load_user_data(args.data, args.label_column, args.time_column, args.normal)
        budget = None if args.max_minutes is None else 60 * args.max_minutes
        results = score_files(files, args.out, budget)
    except (UserDataError, ProductPathError) as error:
        print(f"rnnwatch evaluate: {error}", file=sys.stderr)
        return 2
    per_file = [(s.name, measure(s)) for s in results]
    pooled = measure(pool(results))
    own = sum(f.train_source == "rows before the first label" for f in files)
    print(
        f"rnnwatch evaluate: {len(files)} file(s), {len(files[0].features)} feature(s) "
        f"{list(files[0].features)[:8]}; trained on --normal files for {len(files) - own}, on the rows before the "
        f"first label for {own} (those score only from their first label on); `rnnwatch train` and `rnnwatch "
        "score` defaults; best_cut_f1 = label-chosen cut, an upper bound a user does not get"
    )
    print(format_rows([*per_file, ("pooled", pooled)]))
    bare = without_reference(args.out / "model", [f.key for f in files])
    if bare:
        print(
            f"note: {len(bare)} file(s) {bare[:5]} had too few normal rows for the trained envelope (a frozen reference"
            " of normal behaviour): they are scored by the forecast alone; give them more normal rows"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    _write_per_file(args.out / "per_file.csv", [*per_file, ("pooled", pooled)])
    if not have_matplotlib():
        print("no PNG: matplotlib is not installed (pip install 'rnnwatch[demo]')")
    elif args.worst > 0:
        order = sorted(range(len(results)), key=lambda i: (per_file[i][1]["f1"], -per_file[i][1]["missed"]))
        picked = [(results[i], files[i].values, per_file[i][1]["f1"]) for i in order[: args.worst]]
        png = plot_files(args.out / "worst_files.png", picked, files[0].features)
        print(f"wrote {png} (the {len(picked)} file(s) with the lowest pointwise F1)")
    print(
        f"pooled: point_f1={pooled['f1']:.3f} false_alarms={pooled['false_alarm']:.4f} missed={pooled['missed']:.3f} "
        f"event_f1={pooled['event_f1']:.3f} best_cut_point_f1={pooled['best_f1']:.3f}; wrote {args.out}"
    )
    return 0
