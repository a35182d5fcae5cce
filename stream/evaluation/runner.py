"""Run detectors over a NAB corpus, score them under every profile, write NAB's results layout, print a table."""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.evaluation import EvaluationError
from stream.evaluation.baselines import BASELINES
from stream.evaluation.nab_data import NabFile
from stream.evaluation.nab_scorer import Profile, ProfileResult, score_corpus
from stream.evaluation.postprocess import range_novelty, refractory

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
    """The baselines of :mod:`stream.evaluation.baselines`, and range novelty alone, as corpus detectors."""
    detectors = {name: per_file(fn) for name, fn in BASELINES.items()}
    detectors["rangeNovelty"] = per_file(lambda values: refractory(range_novelty(values), 1000))
    return detectors


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


def file_half(name: str) -> int:
    """0 or 1: a fixed split of the corpus by a hash of the file name (CRC-32 parity), for overfitting checks."""
    return zlib.crc32(name.encode()) % 2


def split_results(
    run: DetectorRun, windows: Mapping[str, Sequence[tuple[int, int]]], profiles: Sequence[Profile]
) -> tuple[dict[str, ProfileResult], dict[str, ProfileResult]]:
    """One detector's run scored separately on the two halves of :func:`file_half` (threshold optimised per half)."""
    halves = []
    for half in (0, 1):
        names = [name for name in run.scores if file_half(name) == half]
        halves.append(score_corpus({n: run.scores[n] for n in names}, {n: windows[n] for n in names}, profiles))
    return halves[0], halves[1]


def format_split_table(
    runs: Sequence[DetectorRun], windows: Mapping[str, Sequence[tuple[int, int]]], profiles: Sequence[Profile]
) -> str:
    """Text table of every detector's scores on each half of the corpus split by :func:`file_half`."""
    header = f"{'detector':<20}" + "".join(f"{f'{h} {p.name}':>24}" for h in "AB" for p in profiles)
    lines = [header, "-" * len(header)]
    for run in runs:
        a, b = split_results(run, windows, profiles)
        cells = "".join(f"{half[p.name].normalised:>24.2f}" for half in (a, b) for p in profiles)
        lines.append(f"{run.name:<20}{cells}")
    return "\n".join(lines)
