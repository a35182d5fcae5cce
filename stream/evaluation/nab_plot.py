"""`rnnwatch bench nab --plot`: score's picture of the NAB files the product does worst on at its default threshold.

Worst = most labelled windows without a flag, then most flags outside every window. Their streams are re-scored
from the benchmark's own test log and model (``stream.evaluation.rescore``: score's output has no forecast band),
the windows shaded, flags told true (inside a window) from false, and the title carries the model version and
the run's NAB scores at the default threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.evaluation.nab_data import NabFile
from stream.evaluation.rescore import rescore
from stream.evaluation.score_plot import ScoreRecorder


@dataclass(frozen=True)
class NabPicture:
    """What the plot needs, recorded while the benchmark's model and logs still exist."""

    recorder: ScoreRecorder
    keys: list[str]
    labelled: dict[str, np.ndarray]
    notes: dict[str, str]
    version: str


def _counts(scores: np.ndarray, windows: Sequence[tuple[int, int]], threshold: float) -> tuple[int, int]:
    """(windows without a flag, flags outside every window) of one file at ``threshold`` (file row order)."""
    flags = scores >= threshold
    inside = np.zeros(scores.size, dtype=bool)
    for start, end in windows:
        inside[start : end + 1] = True
    missed = sum(not flags[start : end + 1].any() for start, end in windows)
    return missed, int((flags & ~inside).sum())


def record_worst(
    files: Sequence[NabFile],
    windows: Mapping[str, Sequence[tuple[int, int]]],
    scores: Mapping[str, np.ndarray],
    model_dir: Path,
    test_log: Path,
    threshold: float,
    count: int,
) -> NabPicture:
    """Pick the ``count`` worst files and re-score them from ``test_log`` with ``model_dir``."""
    from rnncore.model.artifact import read_metadata

    counts = {f.name: _counts(scores[f.name], windows[f.name], threshold) for f in files}
    keys = sorted(counts, key=lambda name: (-counts[name][0], -counts[name][1], name))[:count]
    recorder = rescore(model_dir, [test_log], keys, threshold)
    by_name = {f.name: f for f in files}
    labelled, notes = {}, {}
    for key in keys:
        seconds = by_name[key].seconds
        spans = [(seconds[start], seconds[end]) for start, end in windows[key]]
        times = np.asarray(recorder.streams[key].times)
        labelled[key] = np.any([(times >= a) & (times <= b) for a, b in spans], axis=0) if spans else times < 0
        missed, false = counts[key]
        notes[key] = f"{len(spans) - missed} of {len(spans)} window(s) flagged, {false} flag(s) outside windows"
    return NabPicture(recorder, keys, labelled, notes, str(read_metadata(model_dir).get("version", "?")))


def draw(path: Path, picture: NabPicture, threshold: float, title: str) -> Path:
    """Write the PNG (``score_plot.plot_scored`` with the windows and notes); returns its path."""
    from stream.evaluation.score_plot import plot_scored

    return plot_scored(
        path, picture.recorder, picture.keys, threshold, picture.version, picture.labelled, picture.notes, title
    )
