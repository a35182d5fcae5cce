"""Run detectors over a NAB corpus, score them under every profile, write NAB's results layout, print a table."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.errors import EvaluationError
from stream.evaluation.baselines import BASELINES
from stream.evaluation.nab_data import NabFile
from stream.evaluation.nab_scorer import Profile, ProfileResult, score_corpus

CorpusDetector = Callable[[Sequence[NabFile]], dict[str, np.ndarray]]
"""A detector over a whole corpus: files -> anomaly score per row of each file (name -> float [n] in [0, 1])."""


@dataclass(frozen=True)
class DetectorRun:
    """One detector's scores on the corpus and its result under each profile."""

    name: str
    scores: dict[str, np.ndarray]
    results: dict[str, ProfileResult]
    seconds: float


def per_file(detector: Callable[[np.ndarray], np.ndarray]) -> CorpusDetector:
    """Lift a detector over one series' values into a corpus detector (each file scored independently)."""

    def run(files: Sequence[NabFile]) -> dict[str, np.ndarray]:
        return {f.name: detector(f.values) for f in files}

    return run


def baseline_detectors() -> dict[str, CorpusDetector]:
    """NAB's baselines (:mod:`stream.evaluation.baselines`) as corpus detectors."""
    return {name: per_file(fn) for name, fn in BASELINES.items()}


def evaluate(
    name: str,
    detector: CorpusDetector,
    files: Sequence[NabFile],
    windows: Mapping[str, Sequence[tuple[int, int]]],
    profiles: Sequence[Profile],
) -> DetectorRun:
    """Run one detector over every file and score it; checks it returned one finite score per row."""
    import time

    start = time.perf_counter()
    scores = detector(files)
    seconds = time.perf_counter() - start
    for f in files:
        s = scores.get(f.name)
        if s is None or s.shape != f.values.shape or not np.isfinite(s).all():
            raise EvaluationError(f"detector {name!r} must return {f.values.size} finite scores for {f.name}")
    return DetectorRun(name, scores, score_corpus(scores, windows, profiles), seconds)


def write_results(
    out_dir: str | Path, run: DetectorRun, files: Sequence[NabFile], windows: Mapping[str, Sequence[tuple[int, int]]]
) -> None:
    """NAB's layout: ``<out>/<detector>/<category>/<detector>_<file>.csv`` (timestamp,value,anomaly_score,label)
    and ``<out>/<detector>/<detector>_<profile>_scores.json`` with the threshold and counts."""
    root = Path(out_dir) / run.name
    for f in files:
        category, base = f.name.split("/", 1) if "/" in f.name else ("", f.name)
        path = root / category / f"{run.name}_{base}"
        path.parent.mkdir(parents=True, exist_ok=True)
        label = np.zeros(f.values.size, dtype=np.int64)
        for left, right in windows[f.name]:
            label[left : right + 1] = 1
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "value", "anomaly_score", "label"])
            stamps = np.datetime_as_string(f.timestamps, unit="s")
            for stamp, value, score, lab in zip(stamps, f.values, run.scores[f.name], label, strict=True):
                writer.writerow([stamp.replace("T", " "), repr(float(value)), repr(float(score)), int(lab)])
    for profile, result in run.results.items():
        summary = {
            "detector": run.name,
            "profile": profile,
            "score": result.normalised,
            "threshold": result.best.threshold,
            "raw": result.best.raw,
            "null_raw": result.null_raw,
            "perfect_raw": result.perfect_raw,
            "tp_windows": result.best.tp,
            "fn_windows": result.best.fn,
            "fp_points": result.best.fp,
        }
        (root / f"{run.name}_{profile}_scores.json").write_text(json.dumps(summary, indent=2) + "\n")


def write_final_results(out_dir: str | Path, runs: Sequence[DetectorRun]) -> Path:
    """``<out>/final_results.json`` as NAB writes it: detector -> profile -> normalised score."""
    path = Path(out_dir) / "final_results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = {run.name: {p: round(r.normalised, 4) for p, r in run.results.items()} for run in runs}
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    return path


def format_table(runs: Sequence[DetectorRun], profiles: Sequence[Profile]) -> str:
    """Aligned text table: one row per detector, one column per profile, plus run time."""
    header = f"{'detector':<20}" + "".join(f"{p.name:>20}" for p in profiles) + f"{'seconds':>10}"
    lines = [header, "-" * len(header)]
    for run in runs:
        cells = "".join(f"{run.results[p.name].normalised:>20.2f}" for p in profiles)
        lines.append(f"{run.name:<20}{cells}{run.seconds:>10.1f}")
    return "\n".join(lines)
