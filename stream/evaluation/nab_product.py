"""The product path on NAB: what a user runs, `rnnwatch train` on normal data, then `rnnwatch score`.

Every NAB file is one stream (key = its name relative to ``data/``). The probationary rows of every file (NAB's
``probation_length``: the rows a detector may learn from, never scored) form one training log; every file's
rows form the log `rnnwatch score` reads. Both commands run through their own parsers and ``run`` functions
(:func:`stream.evaluation.product_path.run_cli`) with nothing but the paths, so the model, the envelope, the
scoring path and the threshold are the defaults a user gets. Times are NAB's timestamps as epoch seconds (UTC),
the time an event log carries.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from stream.errors import ProductPathError
from stream.evaluation.nab_data import NabFile
from stream.evaluation.nab_scorer import probation_length
from stream.evaluation.product_path import run_cli


@dataclass(frozen=True)
class NabProductRun:
    """What `rnnwatch score` wrote per file (file row order): ``rarity`` (``-log10(1 - score)``, unbounded: what
    NAB's threshold sweep ranks), ``scores`` and the ``anomaly`` flags; the CLI's default threshold on the score
    and the same on the rarity; the artifact and what the commands printed."""

    rarity: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    flags: dict[str, np.ndarray]
    artifact: Path
    threshold: float
    train_output: str
    score_output: str

    @property
    def rarity_threshold(self) -> float:
        """The rarity at the score threshold: ``score >= threshold`` exactly when ``rarity >= this`` (0.99: 2)."""
        return float(-np.log10(1.0 - self.threshold))


def write_log(path: Path, files: Sequence[NabFile], probation_only: bool) -> int:
    """Write the files' rows (only the probationary ones with ``probation_only``) as one ``key,time,value`` CSV
    event log; returns the number of rows written."""
    rows = 0
    with path.open("w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["key", "time", "value"])
        for f in files:
            stop = probation_length(f.values.size) if probation_only else f.values.size
            for t, v in zip(f.seconds[:stop].tolist(), f.values[:stop].tolist(), strict=True):
                table.writerow([f.name, repr(t), repr(v)])
            rows += stop
    return rows


def read_scores(path: Path, files: Sequence[NabFile], field: str = "score") -> dict[str, np.ndarray]:
    """One field of `rnnwatch score`'s JSON Lines output (``score``, ``rarity``, ``anomaly``) back in each file's
    row order, as float64.

    The command scores events in time order (a stable sort, so equal times keep file order); a few NAB files
    step back in time, so a key's k-th output row is the file's row at the k-th place of that stable sort."""
    per_key: dict[str, list[float]] = {f.name: [] for f in files}
    with path.open("rb") as handle:
        for line in handle:
            row = orjson.loads(line)
            per_key[row["key"]].append(float(row[field]))
    scores = {}
    for f in files:
        emitted = np.asarray(per_key[f.name], dtype=np.float64)
        if emitted.size != f.values.size:
            raise ProductPathError(f"{f.name}: rnnwatch score wrote {emitted.size} of its {f.values.size} rows")
        out = np.empty_like(emitted)
        out[np.argsort(f.seconds, kind="stable")] = emitted
        scores[f.name] = out
    return scores


def train_and_score(files: Sequence[NabFile], workdir: Path, train_seconds: float | None = None) -> NabProductRun:
    """`rnnwatch train --logs probation.csv --out model` then `rnnwatch score --logs all.csv --model model`.

    ``train_seconds`` maps to ``--train-minutes`` (a budget only; every other setting stays the default)."""
    from stream.commands import score, train

    workdir.mkdir(parents=True, exist_ok=True)
    train_log, test_log = workdir / "probation.csv", workdir / "all.csv"
    write_log(train_log, files, probation_only=True)
    write_log(test_log, files, probation_only=False)
    artifact, scored = workdir / "model", workdir / "scores.jsonl"
    budget = [] if train_seconds is None else ["--train-minutes", f"{train_seconds / 60:g}"]
    _, trained = run_cli(train.add_arguments, train.run, ["--logs", str(train_log), "--out", str(artifact), *budget])
    args, scored_text = run_cli(
        score.add_arguments, score.run, ["--logs", str(test_log), "--model", str(artifact), "--out", str(scored)]
    )
    rarity, scores, flags = (read_scores(scored, files, name) for name in ("rarity", "score", "anomaly"))
    return NabProductRun(rarity, scores, flags, artifact, float(args.threshold), trained, scored_text)
