"""Per-stream state table: stream keys map to rows of columns allocated once, with a flood guard and eviction.

Every column is ``np.zeros((max_streams, *shape), dtype)``: the OS commits calloc'd pages lazily, so the
table grows as streams arrive without ever copying or pausing. Keys live in ``key_shards`` small dicts
(routed by the key's cached hash) because one Python dict pauses ~30 ms to resize at 700k keys and ~70 ms
at 1.4M; a shard resizes a 1/key_shards slice instead. Rows of evicted streams are recycled through a
free list and zeroed when reused.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rnncore.contract import EventStatus, status_reason
from rnncore.errors import StateError, TableFullError
from rnncore.state.snapshot import MAX_KEY_BYTES, ColumnSpec, decode_rows, encode_rows

__all__ = [
    "MAX_KEY_BYTES",
    "ColumnSpec",
    "EventStatus",
    "StateTable",
    "columns_from_schema",
    "status_reason",
]

Schema = Mapping[str, tuple[tuple[int, ...], Any]]


def columns_from_schema(schema: Schema) -> tuple[ColumnSpec, ...]:
    """Validate ``{name: (shape_after_row_axis, dtype)}`` and return it as column specs, in the given order."""
    specs = []
    for name, entry in schema.items():
        try:
            shape, dtype = entry
            shape = tuple(int(d) for d in shape)
            dtype = np.dtype(dtype)
        except (TypeError, ValueError) as error:
            raise StateError(f"column {name!r} must be (shape, dtype), got {entry!r}: {error}") from None
        if not isinstance(name, str) or not name:
            raise StateError(f"column names must be non-empty strings, got {name!r}")
        if any(d < 1 for d in shape):
            raise StateError(f"column {name!r} has shape {shape}; every dimension must be >= 1")
        if dtype.hasobject or dtype.kind not in "biuf":
            raise StateError(f"column {name!r} has dtype {dtype}; only bool, integer and float columns are stored")
        specs.append(ColumnSpec(name=name, shape=shape, dtype=dtype))
    if not specs:
        raise StateError("a state table needs at least one column")
    return tuple(specs)


def _is_valid_key(key: object) -> bool:
    """A non-empty str whose UTF-8 form (no lone surrogates) is at most MAX_KEY_BYTES long."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_BYTES:
        return False
    if key.isascii():
        return True
    try:
        return len(key.encode("utf-8")) <= MAX_KEY_BYTES
    except UnicodeEncodeError:
        return False


class StateTable:
    """Stream key -> row of every column; rows are allocated once up front and recycled after eviction."""

    def __init__(
        self, schema: Schema, *, max_streams: int, time_column: str = "last_time", key_shards: int = 256
    ) -> None:
        if max_streams < 1:
            raise StateError(f"max_streams must be >= 1, got {max_streams}")
        if key_shards < 1 or key_shards & (key_shards - 1):
            raise StateError(f"key_shards must be a power of two, got {key_shards}")
        self.specs = columns_from_schema(schema)
        self.max_streams = int(max_streams)
        self.time_column = time_column
        self.columns: dict[str, np.ndarray] = {
            spec.name: np.zeros((self.max_streams, *spec.shape), dtype=spec.dtype) for spec in self.specs
        }
        self.row_nbytes = sum(spec.row_nbytes for spec in self.specs)
        self._mask = key_shards - 1
        self._shards: list[dict[Any, int]] = [{} for _ in range(key_shards)]
        self._getters = [shard.get for shard in self._shards]
        self._row_keys: list[str | None] = []  # row -> key, grows with the high-water mark
        self._in_use = np.zeros(self.max_streams, dtype=np.bool_)
        self._free = np.zeros(self.max_streams, dtype=np.int64)  # stack of recycled rows
        self._free_top = 0
        self._count = 0
        self._key_bytes = 0  # sys.getsizeof of the resident keys
        self._late_columns: frozenset[str] = frozenset()

    def allow_missing_on_import(self, names: Iterable[str]) -> None:
        """Name columns added to the layout after older snapshots were written: :meth:`import_rows` accepts a
        snapshot without them and zeroes them for its streams, as for a new stream (an upgrade keeps its state).
        Only for columns whose zero is a valid start."""
        unknown = set(names) - {spec.name for spec in self.specs}
        if unknown:
            raise StateError(f"no such columns in this table: {sorted(unknown)}")
        self._late_columns = self._late_columns | frozenset(names)

    # ------------------------------------------------------------------ lookup and insertion
    def rows_for(self, keys: Iterable[object]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for ``keys``, inserting new ones; returns ``(rows int64[B], status int8[B])``.

        Status 0 ok, 2 table full (the flood guard), 3 key not a non-empty str of at most 256 UTF-8 bytes;
        rejected events get row -1. Newly assigned rows are zeroed.
        """
        keys = keys if isinstance(keys, list) else list(keys)
        rows = self._find_rows(keys)
        status = np.zeros(len(keys), dtype=np.int8)
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            self._insert(keys, missing.tolist(), rows, status)
        return rows, status

    def lookup(self, keys: Iterable[object]) -> np.ndarray:
        """Rows of ``keys`` without inserting; -1 for keys not in the table."""
        return self._find_rows(keys if isinstance(keys, list) else list(keys))

    def _find_rows(self, keys: Sequence[object]) -> np.ndarray:
        getters, mask = self._getters, self._mask
        try:
            found = [getters[hash(key) & mask](key, -1) for key in keys]
        except TypeError:  # an unhashable key: take the careful path for the whole batch
            found = [self._find(key) for key in keys]
        return np.array(found, dtype=np.int64) if found else np.empty(0, dtype=np.int64)

    def _find(self, key: object) -> int:
        try:
            return self._getters[hash(key) & self._mask](key, -1)
        except TypeError:
            return -1

    def _insert(self, keys: Sequence[object], positions: list[int], rows: np.ndarray, status: np.ndarray) -> None:
        """Assign rows to the keys at ``positions`` (not in the table), in arrival order, as one bulk step."""
        limit = MAX_KEY_BYTES
        valid = [
            i
            for i in positions
            if (type(key := keys[i]) is str and key.isascii() and 0 < len(key) <= limit) or _is_valid_key(key)
        ]
        status[positions] = EventStatus.BAD_KEY
        status[valid] = EventStatus.OK
        if not valid:
            return
        unique: list[str] = list(dict.fromkeys([keys[i] for i in valid]))  # type: ignore[misc]
        fresh = self._allocate(len(unique))
        accepted = unique[: fresh.size]
        assigned = dict(zip(accepted, fresh.tolist(), strict=True))
        shards, mask, row_keys = self._shards, self._mask, self._row_keys
        for key, row in assigned.items():
            shards[hash(key) & mask][key] = row
            row_keys[row] = key
        self._key_bytes += sum(map(sys.getsizeof, accepted))
        self._count += len(accepted)
        self._in_use[fresh] = True
        found = np.array([assigned.get(keys[i], -1) for i in valid], dtype=np.int64)  # type: ignore[call-overload]
        rows[valid] = found
        status[np.asarray(valid)[found < 0]] = EventStatus.TABLE_FULL

    def _allocate(self, wanted: int) -> np.ndarray:
        """Up to ``wanted`` rows: recycled ones first (zeroed here), then never-used rows above the high-water mark.

        Rows above the high-water mark have never been handed out, so they still hold calloc's zeros.
        """
        recycled = min(wanted, self._free_top)
        reused = self._free[self._free_top - recycled : self._free_top][::-1].copy()
        self._free_top -= recycled
        for column in self.columns.values():
            column[reused] = 0
        high = len(self._row_keys)
        grown = min(wanted - recycled, self.max_streams - high)
        self._row_keys.extend([None] * grown)
        return np.concatenate([reused, np.arange(high, high + grown, dtype=np.int64)])

    # ------------------------------------------------------------------ removal
    def remove_rows(self, rows: np.ndarray) -> int:
        """Forget the streams at ``rows`` (in use) and put the rows on the free list; returns how many."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = np.unique(rows[(rows >= 0) & (rows < len(self._row_keys))])
        rows = rows[self._in_use[rows]]
        for row in rows.tolist():
            key = self._row_keys[row]
            assert key is not None
            del self._shards[hash(key) & self._mask][key]
            self._row_keys[row] = None
            self._key_bytes -= sys.getsizeof(key)
        self._in_use[rows] = False
        self._free[self._free_top : self._free_top + rows.size] = rows
        self._free_top += int(rows.size)
        self._count -= int(rows.size)
        return int(rows.size)

    def remove(self, keys: Iterable[str]) -> int:
        """Forget the given streams (unknown keys are ignored); returns how many were removed."""
        return self.remove_rows(self.lookup(keys))

    def evict_idle(self, now: float, ttl_seconds: float) -> int:
        """Remove every stream whose ``last_time`` is older than ``now - ttl_seconds``; returns how many."""
        if self.time_column not in self.columns:
            raise StateError(f"eviction needs a {self.time_column!r} column; this table has {list(self.columns)}")
        high = len(self._row_keys)
        last_time = self.columns[self.time_column][:high]
        idle = np.flatnonzero(self._in_use[:high] & (last_time < now - ttl_seconds))
        return self.remove_rows(idle)

    # ------------------------------------------------------------------ inspection
    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        return self._find(key) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def keys(self) -> list[str]:
        """Resident stream keys, in row order."""
        return [key for key in self._row_keys if key is not None]

    def used_rows(self) -> np.ndarray:
        """Rows currently assigned to a stream, ascending."""
        return np.flatnonzero(self._in_use[: len(self._row_keys)])

    def resident_bytes(self) -> int:
        """Bytes held for resident streams: their column rows plus an estimate of keys, maps and bookkeeping."""
        maps = sum(sys.getsizeof(shard) for shard in self._shards)
        row_ints = 32 * self._count  # one int object per dict value (ints above 256 are not cached)
        bookkeeping = sys.getsizeof(self._row_keys) + len(self._row_keys) * (1 + 8)  # in_use flag, free slot
        return self._count * self.row_nbytes + self._key_bytes + maps + row_ints + bookkeeping

    # ------------------------------------------------------------------ snapshots
    def export_rows(self, keys: Iterable[str] | None = None) -> bytes:
        """Snapshot of the given streams (all when None; unknown keys are skipped), see rnncore.state.snapshot."""
        if keys is None:
            rows = self.used_rows()
        else:
            rows = self.lookup(dict.fromkeys(keys))  # de-duplicated, first-seen order
            rows = rows[rows >= 0]
        row_keys = self._row_keys
        names = [row_keys[row] for row in rows.tolist()]
        return encode_rows(self.specs, names, self.columns, rows)

    def import_rows(self, data: bytes) -> int:
        """Load a snapshot's streams, overwriting rows of keys already present; returns the number of rows.

        All or nothing: a corrupt snapshot, a schema mismatch or too few free rows changes nothing.
        """
        payload = decode_rows(data, self.specs, self._late_columns)  # keys: non-empty UTF-8, at most 256 bytes
        rows = self._find_rows(payload.keys)
        missing = np.flatnonzero(rows < 0)
        free = self.max_streams - self._count
        if missing.size > free:
            raise TableFullError(f"snapshot brings {missing.size} new streams but only {free} rows are free")
        status = np.zeros(len(payload.keys), dtype=np.int8)
        if missing.size:
            self._insert(payload.keys, missing.tolist(), rows, status)
        assert not status.any()
        for spec in self.specs:
            values = payload.columns.get(spec.name)
            self.columns[spec.name][rows] = 0 if values is None else values  # absent: a late column
        return len(payload.keys)
