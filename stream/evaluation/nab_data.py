"""Load a NAB corpus: ``data/<category>/<file>.csv`` (timestamp,value), ``labels/combined_windows.json`` and
``config/profiles.json``; windows are returned as inclusive row-index ranges of each file."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.errors import EvaluationError
from stream.evaluation.nab_scorer import PROFILES, Profile


@dataclass(frozen=True)
class NabFile:
    """One benchmark series: its name relative to ``data/`` (e.g. ``realKnownCause/nyc_taxi.csv``) and rows."""

    name: str
    timestamps: np.ndarray  # datetime64[s] [n], file order (a few NAB files repeat or step back)
    values: np.ndarray  # float64 [n]

    @property
    def seconds(self) -> np.ndarray:
        """Timestamps as float64 seconds since the epoch (the Detector's time axis)."""
        return self.timestamps.astype("datetime64[s]").astype(np.float64)


def _parse_time(text: str) -> np.datetime64:
    return np.datetime64(text.strip().replace(" ", "T"), "s")


def read_series(path: Path, name: str) -> NabFile:
    """Read one ``timestamp,value`` CSV in file order; rejects unparsable rows with the file and line."""
    times: list[np.datetime64] = []
    values: list[float] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise EvaluationError(f"{path}: expected a 'timestamp,value' header, got {header}")
        for line, row in enumerate(reader, start=2):
            try:
                times.append(_parse_time(row[0]))
                values.append(float(row[1]))
            except (IndexError, ValueError) as error:
                raise EvaluationError(f"{path}:{line}: cannot parse {row!r} ({error})") from error
    stamps = np.array(times, dtype="datetime64[s]")
    return NabFile(name=name, timestamps=stamps, values=np.array(values, dtype=np.float64))


def load_series(root: str | Path) -> list[NabFile]:
    """Every ``data/*/*.csv`` under a NAB root, sorted by name."""
    data = Path(root) / "data"
    paths = sorted(data.glob("*/*.csv"))
    if not paths:
        raise EvaluationError(f"no data/<category>/<file>.csv under {Path(root)}: is this a NAB checkout?")
    return [read_series(path, path.relative_to(data).as_posix()) for path in paths]


def _first_row(stamps: np.ndarray, stamp: np.datetime64, *, at_or_after: bool) -> int:
    """Row of the first exact match (as NAB does), else the first row after (or last row before) ``stamp``."""
    exact = np.flatnonzero(stamps == stamp)
    if exact.size:
        return int(exact[0])
    candidates = np.flatnonzero(stamps > stamp) if at_or_after else np.flatnonzero(stamps < stamp)
    if not candidates.size:
        return stamps.size if at_or_after else -1
    return int(candidates[0] if at_or_after else candidates[-1])


def window_rows(series: NabFile, windows: list[list[str]]) -> list[tuple[int, int]]:
    """Label windows (timestamp pairs) as inclusive row ranges of the file."""
    rows = []
    for start, end in windows:
        left = _first_row(series.timestamps, _parse_time(start.split(".")[0]), at_or_after=True)
        right = _first_row(series.timestamps, _parse_time(end.split(".")[0]), at_or_after=False)
        if left > right:
            raise EvaluationError(f"{series.name}: window {start}..{end} contains no rows")
        rows.append((left, right))
    return rows


def load_windows(root: str | Path, files: list[NabFile]) -> dict[str, list[tuple[int, int]]]:
    """``labels/combined_windows.json`` as row ranges for each of ``files`` (files without an entry: error)."""
    path = Path(root) / "labels" / "combined_windows.json"
    try:
        labels = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise EvaluationError(f"cannot read NAB labels {path}: {error}") from error
    missing = [f.name for f in files if f.name not in labels]
    if missing:
        raise EvaluationError(f"{path} has no windows for {missing[:3]}")
    return {f.name: window_rows(f, labels[f.name]) for f in files}


def load_profiles(root: str | Path) -> tuple[Profile, ...]:
    """``config/profiles.json`` cost matrices; NAB's published three profiles when the file is absent."""
    path = Path(root) / "config" / "profiles.json"
    if not path.exists():
        return PROFILES
    try:
        raw = json.loads(path.read_text())
        return tuple(
            Profile(name, tp=float(m["tpWeight"]), fp=float(m["fpWeight"]), fn=float(m["fnWeight"]))
            for name, entry in raw.items()
            for m in [entry["CostMatrix"]]
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EvaluationError(f"cannot read NAB profiles {path}: {error}") from error
