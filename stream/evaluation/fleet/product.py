"""The product path on a fleet: what a user runs, `rnnwatch train` on the clean logs, then `rnnwatch score`.

Each group of units with the same feature count becomes one training log and one test log (CSV
``key,time,values...``, the format the CLI reads); the CLI's own argument parsers and ``run`` functions are
called with nothing but the paths (plus an optional training budget), so the defaults and the code are exactly
what the user gets. Single-feature streams and 8-sensor machines need separate models (one artifact per width).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stream.errors import ProductPathError
from stream.evaluation.fleet.generator import FleetUnit
from stream.evaluation.product_path import ProductScores, train_and_score_logs

__all__ = ["ProductRun", "train_and_score", "write_log"]


ProductRun = ProductScores  # scores per unit name, artifact, default threshold


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

    ``train_seconds`` maps to ``--train-minutes`` (a budget only; every other setting stays the default).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    train_log = write_log(workdir / "train.csv", units, "train")
    test_log = write_log(workdir / "test.csv", units, "test")
    run = train_and_score_logs(train_log, test_log, workdir, train_seconds)
    scores = {u.name: run.scores.get(u.name, np.empty(0)) for u in units}
    for u in units:
        if scores[u.name].shape[0] != u.test.shape[0]:
            raise ProductPathError(f"{u.name}: scored {scores[u.name].shape[0]} of {u.test.shape[0]} test events")
    return ProductRun(scores, run.artifact, run.threshold, run.contributions)
