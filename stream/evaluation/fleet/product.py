"""The product path on a fleet: what a user runs, `rnnwatch train` on the clean logs, then `rnnwatch score`.

Each group of units with the same feature count becomes one training log and one test log (CSV
``key,time,values...``, the format the CLI reads); the CLI's own argument parsers and ``run`` functions are
called with nothing but the paths (plus an optional training budget), so the defaults and the code are exactly
what the user gets. Single-feature streams and 8-sensor machines need separate models (one artifact per width).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from stream.evaluation.fleet.generator import FleetUnit
from stream.evaluation.product_path import ProductPathError, run_cli

__all__ = ["ProductPathError", "ProductRun", "train_and_score", "write_log"]


@dataclass(frozen=True)
class ProductRun:
    """Scores per unit name (test rows, in order), the artifact directory, the CLI's default threshold and, for
    multi-feature units, the per-feature contributions the CLI wrote ([T, F], NaN where it had none)."""

    scores: dict[str, np.ndarray]
    artifact: Path
    threshold: float
    contributions: dict[str, np.ndarray] = field(default_factory=dict)


def write_log(path: Path, units: Sequence[FleetUnit], split: str) -> Path:
    """Write the units' ``train`` or ``test`` rows as one CSV event log, events interleaved by time."""
    with path.open("w", newline="") as handle:
        table = csv.writer(handle)
        for u in units:
            values, times = (u.train, u.train_times) if split == "train" else (u.test, u.test_times)
            for t, row in zip(times.tolist(), values.tolist(), strict=True):
                table.writerow([u.name, repr(t), *(f"{v:.6g}" for v in row)])
    return path


def train_and_score(units: Sequence[FleetUnit], workdir: Path, train_seconds: float | None = None) -> ProductRun:
    """`rnnwatch train --logs train.csv --out model` then `rnnwatch score --logs test.csv --model model`.

    ``train_seconds`` maps to ``--max-minutes`` (a budget only; every other setting stays the default).
    """
    from stream.commands import score, train

    workdir.mkdir(parents=True, exist_ok=True)
    train_log = write_log(workdir / "train.csv", units, "train")
    test_log = write_log(workdir / "test.csv", units, "test")
    artifact, scored = workdir / "model", workdir / "scores.jsonl"
    budget = [] if train_seconds is None else ["--max-minutes", f"{train_seconds / 60:g}"]
    train_argv = ["--logs", str(train_log), "--out", str(artifact), "--no-progress", *budget]
    run_cli(train.add_arguments, train.run, train_argv)
    args, _ = run_cli(
        score.add_arguments, score.run, ["--logs", str(test_log), "--model", str(artifact), "--out", str(scored)]
    )
    per_key: dict[str, list[float]] = {u.name: [] for u in units}
    shares: dict[str, list[list[float]]] = {u.name: [] for u in units}
    with scored.open("rb") as handle:
        for line in handle:
            row = orjson.loads(line)
            per_key[row["key"]].append(float(row["score"]))
            if "contributions" in row:
                shares[row["key"]].append([np.nan if v is None else v for v in row["contributions"]])
    scores = {name: np.asarray(v, dtype=np.float64) for name, v in per_key.items()}
    contributions = {name: np.asarray(v, dtype=np.float64) for name, v in shares.items() if v}
    for u in units:
        if scores[u.name].shape[0] != u.test.shape[0]:
            raise ProductPathError(f"{u.name}: scored {scores[u.name].shape[0]} of {u.test.shape[0]} test events")
    return ProductRun(scores, artifact, float(args.threshold), contributions)
