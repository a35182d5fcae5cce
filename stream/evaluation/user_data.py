"""A user's own labelled CSV files for `rnnwatch evaluate`: read, check and split into training and test rows.

Each file under ``--data`` (subfolders included) is one stream, its key the path below ``--data`` without
``.csv``: a header row, a time column (epoch seconds or ISO-8601), a 0/1 label column and every other column a
feature, in header order, except the ``--ignore-columns`` (e.g. a second label column such as a change-point
marker, which would otherwise leak the labels into the features). Cells are separated by commas, semicolons,
tabs or bars, whichever the header uses most. The rows a stream trains on are, in this order of preference: the
file of the same relative path under ``--normal`` (a label column there is optional; rows labelled 1 are left
out), else the file's own rows before its first label; in the second case the file is scored whole
(its history first, as the service sees the stream) and measured from the first label on, so no measured row was
trained on. Every file must have the same number of feature columns: one model
scores them all.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.data.wire import parse_time
from stream.errors import EventRejectedError, UserDataError

DELIMITERS = ",;\t|"  # the separators a header may use; the one it holds most of wins
MIN_TRAIN_ROWS = 100  # fewer normal rows than this cannot fit the envelope's reference and held-out cut
OWN_HEAD = "rows before the first label"  # EvalFile.train_source of a file that trains on its own head


@dataclass(frozen=True)
class Table:
    """One CSV file's rows sorted by time (stable): times, feature values, labels (None when the file has none)."""

    path: Path
    features: tuple[str, ...]
    times: np.ndarray  # (T,) float seconds
    values: np.ndarray  # (T, F)
    labels: np.ndarray | None  # (T,) int 0/1


@dataclass(frozen=True)
class EvalFile:
    """One stream to evaluate: its key, the rows it trains on and its labelled test rows."""

    key: str
    path: Path
    features: tuple[str, ...]
    train_times: np.ndarray
    train_values: np.ndarray
    times: np.ndarray
    values: np.ndarray
    labels: np.ndarray
    train_source: str  # "normal file <path>" or OWN_HEAD

    @property
    def lead_rows(self) -> int:
        """Rows scored before the measured ones: a file that trains on its own head is scored from its first row,
        as the service would see the stream (its history first, so the stream's state is warm when the first
        label comes), and measured from the first label on; 0 for a file trained on a normal file."""
        return self.train_times.shape[0] if self.train_source == OWN_HEAD else 0


def _column(names: list[str], wanted: str, path: Path, what: str) -> int:
    lowered = [n.strip().lower() for n in names]
    if wanted.lower() not in lowered:
        raise UserDataError(f"{path}: the header {names[:12]!r} has no column {wanted!r} (name it with {what})")
    return lowered.index(wanted.lower())


def _number(cell: str, path: Path, line: int, name: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise UserDataError(f"{path}:{line}: column {name!r} holds {cell[:40]!r}, not a number") from None
    if not math.isfinite(value) or abs(value) > 3.4e38:
        raise UserDataError(f"{path}:{line}: column {name!r} holds {cell[:40]!r}, not a finite float32")
    return value


def delimiter_of(header_line: str) -> str:
    """The separator of a CSV file from its header line: the one of :data:`DELIMITERS` it holds most of (a comma
    when it holds none: a single column)."""
    counts = [header_line.count(d) for d in DELIMITERS]
    return DELIMITERS[counts.index(max(counts))] if max(counts) else ","


def read_table(
    path: Path, time_column: str, label_column: str, label_required: bool = True, ignore: tuple[str, ...] = ()
) -> Table:
    """Read one labelled CSV file; raise :class:`UserDataError` with a one-line reason when it cannot be used."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        delimiter = delimiter_of(handle.readline())
        handle.seek(0)
        rows = list(csv.reader(handle, delimiter=delimiter))
    if not rows:
        raise UserDataError(f"{path}: empty file (a header row and data rows are needed)")
    header = rows[0]
    t_col = _column(header, time_column, path, "--time-column")
    try:
        l_col: int | None = _column(header, label_column, path, "--label-column")
    except UserDataError:
        if label_required:
            raise
        l_col = None
    skipped = {_column(header, name, path, "--ignore-columns") for name in ignore}
    f_cols = [i for i in range(len(header)) if i not in (t_col, l_col) and i not in skipped]
    if not f_cols:
        raise UserDataError(
            f"{path}: no feature columns besides {time_column!r}, {label_column!r} and the --ignore-columns"
        )
    times, values, labels = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UserDataError(f"{path}:{line}: {len(row)} columns, the header has {len(header)}")
        try:
            times.append(parse_time(row[t_col]))
        except EventRejectedError as error:
            raise UserDataError(f"{path}:{line}: column {time_column!r}: {error}") from None
        values.append([_number(row[i], path, line, header[i]) for i in f_cols])
        if l_col is not None:
            label = _number(row[l_col], path, line, header[l_col])
            if label not in (0.0, 1.0):
                raise UserDataError(
                    f"{path}:{line}: label column {label_column!r} holds {row[l_col]!r}: labels must be 0 or 1"
                )
            labels.append(int(label))
    if not times:
        raise UserDataError(f"{path}: no data rows after the header")
    order = np.argsort(np.asarray(times), kind="stable")
    return Table(
        path,
        tuple(header[i].strip() for i in f_cols),
        np.asarray(times, dtype=np.float64)[order],
        np.asarray(values, dtype=np.float64)[order],
        None if l_col is None else np.asarray(labels, dtype=np.int64)[order],
    )


def _csv_files(directory: Path, flag: str, skip: Path | None = None) -> list[Path]:
    """The ``.csv`` files below ``directory``, none of them below ``skip`` (a --normal folder inside --data)."""
    if not directory.is_dir():
        raise UserDataError(f"{flag} {directory} is not a directory")
    inside = None if skip is None else skip.resolve()
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.suffix.lower() == ".csv" and (inside is None or not p.resolve().is_relative_to(inside))
    )
    if not files:
        raise UserDataError(f"{flag} {directory}: no .csv files in it")
    return files


def _key(path: Path, directory: Path) -> str:
    """A file's stream key: its path below the directory, without the suffix (``valve1/3`` for valve1/3.csv)."""
    return path.relative_to(directory).with_suffix("").as_posix()


def _split(key: str, table: Table, normal: Table | None) -> EvalFile:
    """Training rows (the normal file's unlabelled rows, else the rows before the first label) and test rows."""
    assert table.labels is not None
    if normal is not None:
        keep = np.ones(normal.times.shape[0], dtype=bool) if normal.labels is None else normal.labels == 0
        train_t, train_x, source = normal.times[keep], normal.values[keep], f"normal file {normal.path}"
        times, values, labels = table.times, table.values, table.labels
    else:
        first = int(np.argmax(table.labels > 0)) if table.labels.any() else table.labels.shape[0]
        train_t, train_x, source = table.times[:first], table.values[:first], OWN_HEAD
        times, values, labels = table.times[first:], table.values[first:], table.labels[first:]
        if times.size == 0:
            raise UserDataError(
                f"{table.path}: no row is labelled 1, so nothing is left to test after the rows before the first "
                "label; give its normal rows in --normal DIR (a file of the same name)"
            )
    if train_t.shape[0] < MIN_TRAIN_ROWS:
        raise UserDataError(
            f"{table.path}: {train_t.shape[0]} normal rows to train on ({source}), at least {MIN_TRAIN_ROWS} are "
            "needed: give a file of the same name with normal rows in --normal DIR"
        )
    return EvalFile(key, table.path, table.features, train_t, train_x, times, values, labels, source)


def load_user_data(
    data: Path,
    label_column: str,
    time_column: str = "time",
    normal: Path | None = None,
    ignore: tuple[str, ...] = (),
) -> list[EvalFile]:
    """Every ``.csv`` file below ``data`` as an :class:`EvalFile`; one width for all of them (one model)."""
    tables = {
        _key(p, data): read_table(p, time_column, label_column, ignore=ignore)
        for p in _csv_files(data, "--data", normal)
    }
    normals: dict[str, Table] = {}
    if normal is not None:
        for p in _csv_files(normal, "--normal"):
            normals[_key(p, normal)] = read_table(p, time_column, label_column, False, ignore)
    stray = sorted(set(normals) - set(tables))
    if stray:
        raise UserDataError(
            f"--normal {normal}: {stray[:5]} match no file in --data {data}: a normal file trains the --data file "
            "of the same path"
        )
    first = next(iter(tables.values()))
    for t in [*tables.values(), *normals.values()]:
        if len(t.features) != len(first.features):
            raise UserDataError(
                f"{t.path} has {len(t.features)} feature columns {list(t.features)[:8]}, {first.path} has "
                f"{len(first.features)}: one model scores them all, so every file needs the same feature columns"
            )
    return [_split(key, t, normals.get(key)) for key, t in tables.items()]


def write_logs(files: list[EvalFile], train_log: Path, test_log: Path) -> None:
    """The CLI's event-log format (``key,time,v0,...``): training rows of every file, then their scored rows (the
    :attr:`EvalFile.lead_rows` first)."""
    names = ["key", "time", *(f"v{i}" for i in range(files[0].values.shape[1]))]
    for path, pick in ((train_log, "train"), (test_log, "test")):
        with path.open("w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow(names)
            for f in files:
                if pick == "train":
                    times, values = f.train_times, f.train_values
                else:
                    lead = f.lead_rows
                    times = np.concatenate([f.train_times[:lead], f.times])
                    values = np.concatenate([f.train_values[:lead], f.values])
                for t, row in zip(times.tolist(), values.tolist(), strict=True):
                    table.writerow([f.key, repr(t), *(repr(v) for v in row)])
