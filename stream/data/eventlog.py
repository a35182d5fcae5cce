"""Event logs: JSON Lines and CSV readers with per-row validation, and a rolling JSON Lines archive writer.

A record is ``(key, time, values)``: the stream key, the event time in float seconds since the epoch (ISO-8601
strings are accepted and converted; a time without a zone is UTC) and a tuple of F floats.

* JSON Lines: one wire event per line (``stream.data.wire``: the rules the service scores by), e.g.
  ``{"key": "s1", "time": 1700000000.5, "value": 3.2}`` or ``"values": [1.0, 2.0]``.
* CSV with a header: ``key,time,value`` or ``key,time,v0,v1,...`` (any value column names); values are
  numeric text, held to the same finite float32 rule.

Malformed rows are skipped and counted in a ``ReadSummary`` under the dead-letter reason the service would
give them (plus ``blank_line``, ``column_count``); nothing is dropped silently. Rows whose feature count
differs from the first accepted row's are ``wrong_vector_length``. Files ending in ``.gz`` are read and
written compressed.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
import time as _time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from rnncore.contract import EventRecord
from stream.data.wire import RejectReason, checked_value, loads, parse_event, parse_key, parse_time
from stream.errors import EventLogError, EventRejectedError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv",)
_MAX_EXAMPLES = 5


@dataclass
class ReadSummary:
    """What a read saw: rows, accepted records, skips by reason, and a few examples of where and why."""

    rows: int = 0
    accepted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    files: int = 0
    n_features: int | None = None

    def skip(self, reason: str, where: str) -> None:
        """Count a skipped row under ``reason`` and keep the first few locations for the message."""
        self.skipped[reason] += 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def describe(self) -> str:
        """One line for logs and the CLI: counts and the skip reasons."""
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.skipped.items())) or "none"
        return f"{self.files} file(s), {self.rows} rows, {self.accepted} accepted, skipped: {reasons}"


# ---------------------------------------------------------------- row checks


def check_width(record: EventRecord, summary: ReadSummary) -> None:
    """Fix the feature count from the first accepted record; later records must match it."""
    if summary.n_features is None:
        summary.n_features = len(record.values)
    elif len(record.values) != summary.n_features:
        raise EventRejectedError(
            RejectReason.WRONG_VECTOR_LENGTH, f"{len(record.values)} values, earlier rows had {summary.n_features}"
        )


# ---------------------------------------------------------------- readers


def _open_text(path: Path, mode: str = "rt") -> IO[str]:
    if path.suffix == ".gz":
        binary = gzip.GzipFile(path, mode.replace("t", ""))  # noqa: SIM115 - caller closes
        return io.TextIOWrapper(binary, encoding="utf-8", newline="")
    return open(path, mode, encoding="utf-8", newline="")  # noqa: SIM115 - caller closes


def _base_suffix(path: Path) -> str:
    return Path(path.stem).suffix.lower() if path.suffix == ".gz" else path.suffix.lower()


def _jsonl_record(line: str) -> EventRecord:
    if not line.strip():
        raise EventRejectedError("blank_line")
    return parse_event(loads(line))


def _csv_number(cell: str) -> float:
    """A CSV value cell: text is the only way CSV spells a number, so here (only) numeric text is parsed."""
    try:
        value = float(cell)
    except ValueError:
        raise EventRejectedError(RejectReason.BAD_TYPE, f"value {cell[:64]!r} is not a number") from None
    return checked_value(value, cell)


def _csv_record(row: list[str]) -> EventRecord:
    if not row or not any(cell.strip() for cell in row):
        raise EventRejectedError("blank_line")
    if len(row) < 3:
        raise EventRejectedError("column_count", f"{len(row)} columns, need key,time,value")
    return EventRecord(parse_key(row[0].strip()), parse_time(row[1]), tuple(_csv_number(c) for c in row[2:]))


def _valid_rows(
    path: Path, rows: Iterable[Any], parse: Callable[[Any], EventRecord], summary: ReadSummary
) -> Iterator[EventRecord]:
    """Parse numbered rows, counting each one and skipping (with its reason and place) those that fail."""
    for number, row in rows:
        summary.rows += 1
        try:
            record = parse(row)
            check_width(record, summary)
        except EventRejectedError as exc:
            summary.skip(exc.reason, f"{path}:{number}")
            continue
        summary.accepted += 1
        yield record


def read_jsonl(path: str | Path, summary: ReadSummary | None = None) -> Iterator[EventRecord]:
    """Yield the valid records of a JSON Lines file; malformed lines are counted in ``summary``."""
    path, summary = Path(path), summary if summary is not None else ReadSummary()
    summary.files += 1
    with _open_text(path) as handle:
        yield from _valid_rows(path, enumerate(handle, start=1), _jsonl_record, summary)


def _header_order(row: list[str]) -> list[int] | None:
    """Column order (key, time, values...) a header names, or None when the row does not name both."""
    names = [cell.strip().lower() for cell in row]
    if "key" not in names or "time" not in names:
        return None
    key, time_ = names.index("key"), names.index("time")
    return [key, time_, *(i for i in range(len(names)) if i not in (key, time_))]


def read_csv(path: str | Path, summary: ReadSummary | None = None) -> Iterator[EventRecord]:
    """Yield the valid records of a CSV file: a header naming ``key`` and ``time`` columns (anywhere; every other
    column is a value, in header order), a header starting with ``key`` (then by position), or no header and the
    columns ``key,time,value...``."""
    path, summary = Path(path), summary if summary is not None else ReadSummary()
    summary.files += 1
    with _open_text(path) as handle:
        rows = enumerate(csv.reader(handle), start=1)
        first = next(rows, None)
        if first is None:
            return
        order = _header_order(first[1])
        if order is None and first[1] and first[1][0].strip().lower() == "key":  # key,<time>,<values>: by position
            data: Iterable[tuple[int, list[str]]] = rows
        elif order is None:
            try:
                _csv_record(first[1])
            except EventRejectedError:
                if _looks_like_a_header(first[1]):
                    raise EventLogError(
                        f"{path}: the first row {first[1][:6]!r} is neither an event nor a header naming 'key' "
                        "and 'time' columns: name the stream's column key and the time column time (every other "
                        "column is a value)"
                    ) from None
            data = itertools.chain([first], rows)
        else:
            width = len(order)
            data = ((n, [row[i] for i in order] + row[width:] if len(row) >= width else row) for n, row in rows)
        yield from _valid_rows(path, data, _csv_record, summary)


def _looks_like_a_header(row: list[str]) -> bool:
    """No cell after the key reads as a time or a number: column names, not a malformed event."""

    def readable(cell: str, parse: Callable[[str], Any]) -> bool:
        try:
            parse(cell)
        except (ValueError, EventRejectedError):
            return False
        return True

    return len(row) >= 2 and not readable(row[1], parse_time) and not any(readable(c, float) for c in row[2:])


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly plus, for directories, every JSON Lines / CSV file under them (sorted)."""
    files: list[Path] = []
    known = JSONL_SUFFIXES + CSV_SUFFIXES
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and _base_suffix(p) in known))
        elif path.is_file():
            files.append(path)
        else:
            raise EventLogError(f"event log {path} does not exist")
    return files


def iter_event_log(path: str | Path, summary: ReadSummary) -> Iterator[EventRecord]:
    """Records of one file, choosing the reader by suffix (.jsonl/.ndjson/.json or .csv, optionally .gz)."""
    suffix = _base_suffix(Path(path))
    if suffix in JSONL_SUFFIXES:
        return read_jsonl(path, summary)
    if suffix in CSV_SUFFIXES:
        return read_csv(path, summary)
    raise EventLogError(f"cannot tell the format of {path}: use a .jsonl, .ndjson, .json or .csv name")


def read_event_logs(paths: Sequence[str | Path]) -> tuple[list[EventRecord], ReadSummary]:
    """Read every record from files and directories; raise ``EventLogError`` when none is usable."""
    files = expand_paths(paths)
    if not files:
        raise EventLogError(f"no event log files found in {[str(p) for p in paths]}")
    summary = ReadSummary()
    records = [record for path in files for record in iter_event_log(path, summary)]
    if not records:
        where = "; ".join(summary.examples) or "files are empty"
        raise EventLogError(f"no usable rows in the event logs ({summary.describe()}); first problems: {where}")
    return records, summary


# ---------------------------------------------------------------- writer


def encode_record(record: EventRecord) -> bytes:
    """One JSON Lines line (with newline) for a record: ``value`` for one feature, ``values`` otherwise."""
    key, time_, values = record
    obj: dict[str, Any] = {"key": key, "time": time_}
    if len(values) == 1:
        obj["value"] = values[0]
    else:
        obj["values"] = list(values)
    return orjson.dumps(obj) + b"\n"


class RollingEventLogWriter:
    """Archive events into JSON Lines files that roll by size or age; readers only ever see complete files.

    The open file is ``<name>.jsonl.part`` and is renamed to ``<name>.jsonl`` (or ``.jsonl.gz``) when it rolls
    or the writer closes, so ``read_event_logs(directory)`` never reads a half-written file.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        prefix: str = "events",
        max_bytes: int = 64 * 1024 * 1024,
        max_seconds: float | None = None,
        compress: bool = False,
    ) -> None:
        if max_bytes < 1:
            raise EventLogError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(directory)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.compress = compress
        self.completed: list[Path] = []
        self._handle: IO[bytes] | None = None
        self._part: Path | None = None
        self._bytes = 0
        self._opened_at = 0.0
        self._sequence = 0
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, records: Iterable[EventRecord]) -> None:
        """Append records, rolling to a new file when the current one is full or too old."""
        for record in records:
            line = encode_record(record)
            if self._handle is not None and self._should_roll(len(line)):
                self.roll()
            if self._handle is None:
                self._open()
            assert self._handle is not None
            self._handle.write(line)
            self._bytes += len(line)

    def _should_roll(self, incoming: int) -> bool:
        too_big = self._bytes > 0 and self._bytes + incoming > self.max_bytes
        too_old = self.max_seconds is not None and _time.monotonic() - self._opened_at >= self.max_seconds
        return too_big or too_old

    def _open(self) -> None:
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        suffix = ".jsonl.gz" if self.compress else ".jsonl"
        self._part = self.directory / f"{self.prefix}-{stamp}-{os.getpid()}-{self._sequence:06d}{suffix}.part"
        raw: IO[bytes] = open(self._part, "wb")  # noqa: SIM115 - closed in roll()
        self._handle = gzip.GzipFile(fileobj=raw, mode="wb") if self.compress else raw  # type: ignore[assignment]
        self._bytes = 0
        self._opened_at = _time.monotonic()

    def roll(self) -> Path | None:
        """Close the current file and publish it under its final name; returns that name (None if idle)."""
        if self._handle is None or self._part is None:
            return None
        handle = self._handle
        handle.flush()
        if self.compress:
            inner = handle.fileobj  # type: ignore[attr-defined]
            handle.close()
            inner.close()
        else:
            os.fsync(handle.fileno())
            handle.close()
        final = self._part.with_suffix("")
        os.replace(self._part, final)
        self.completed.append(final)
        self._handle, self._part = None, None
        return final

    def close(self) -> None:
        """Publish the open file (if any)."""
        self.roll()

    def __enter__(self) -> RollingEventLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
