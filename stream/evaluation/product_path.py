"""The product path a user runs: `rnnwatch train` on normal logs, then `rnnwatch score` on test logs.

The CLI's own argument parsers and ``run`` functions are called with nothing but the paths (plus an optional
training budget), so the defaults and the code are exactly what the user gets. Shared by the fleet benchmark,
`rnnwatch evaluate` and the rig benchmark, so that none of them can drift from the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from stream.commands.progress import Captured
from stream.errors import ProductPathError


@dataclass(frozen=True)
class ProductScores:
    """Scores per stream key (its test events in time order), the artifact directory, the default threshold and,
    for multi-feature streams, the per-feature contributions `rnnwatch score` wrote ([T, F], NaN where none)."""

    scores: dict[str, np.ndarray]
    artifact: Path
    threshold: float
    contributions: dict[str, np.ndarray] = field(default_factory=dict)


def run_cli(
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str],
) -> tuple[argparse.Namespace, str]:
    """Parse ``argv`` with a command's own parser and run it, capturing what it prints (its progress bars, if
    any, go to the terminal: ``stream.commands.progress``)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(argv)
    output = Captured(sys.stderr)  # progress bars still reach the terminal behind it
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = run(args)
    if code != 0:
        raise ProductPathError(f"{argv[0]}... exited {code}: {output.getvalue().strip()[-800:]}")
    return args, output.getvalue()


def train_and_score_logs(
    train_log: Path, test_log: Path, workdir: Path, train_seconds: float | None = None
) -> ProductScores:
    """`rnnwatch train --logs TRAIN --out WORKDIR/model` then `rnnwatch score --logs TEST --model WORKDIR/model`.

    ``train_seconds`` maps to ``--train-minutes`` (a budget only; every other setting stays the default). Scores
    are grouped by key in the order `rnnwatch score` writes them: time order, ties in file order.
    """
    from stream.commands import score, train

    workdir.mkdir(parents=True, exist_ok=True)
    artifact, scored = workdir / "model", workdir / "scores.jsonl"
    budget = [] if train_seconds is None else ["--train-minutes", f"{train_seconds / 60:g}"]
    run_cli(train.add_arguments, train.run, ["--logs", str(train_log), "--out", str(artifact), *budget])
    args, _ = run_cli(
        score.add_arguments, score.run, ["--logs", str(test_log), "--model", str(artifact), "--out", str(scored)]
    )
    per_key: dict[str, list[float]] = {}
    shares: dict[str, list[list[float]]] = {}
    with scored.open("rb") as handle:
        for line in handle:
            row = orjson.loads(line)
            per_key.setdefault(row["key"], []).append(float(row["score"]))
            if "contributions" in row:
                shares.setdefault(row["key"], []).append([np.nan if v is None else v for v in row["contributions"]])
    scores = {key: np.asarray(v, dtype=np.float64) for key, v in per_key.items()}
    contributions = {key: np.asarray(v, dtype=np.float64) for key, v in shares.items()}
    return ProductScores(scores, artifact, float(args.threshold), contributions)
