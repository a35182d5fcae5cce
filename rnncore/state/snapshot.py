"""Binary format for a subset of a state table's rows: keys plus each column's raw bytes, bit-exact.

Layout (all integers little-endian; every block starts on an 8-byte boundary so column views are aligned)::

    magic  b"RNWSTATE"                 8 bytes
    version u16, reserved u16          4 bytes
    header length u32                  4 bytes
    row count u64                      8 bytes
    header  UTF-8 JSON {"columns": [{"name", "dtype", "shape"}, ...]}   (the schema signature)
    key lengths  u16 x rows, then the keys' UTF-8 bytes
    one block per column, in header order: rows x row bytes, C order
    crc32 u32 of everything before it

Import checks the magic, version, size, checksum and the schema signature (column names, dtypes, shapes)
and names what differs, so a snapshot never lands in a table laid out differently.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rnncore.errors import SnapshotError

MAGIC = b"RNWSTATE"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sHHIQ")  # magic, version, reserved, header length, row count
_CRC = struct.Struct("<I")
_KEY_LENGTH_DTYPE = np.dtype("<u2")
MAX_KEY_BYTES = 256


@dataclass(frozen=True)
class ColumnSpec:
    """One per-row column: ``name``, the shape after the row axis and the dtype (the schema signature unit)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def row_nbytes(self) -> int:
        """Bytes one row of this column occupies."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def signature(self) -> dict[str, object]:
        """The JSON form written to a snapshot header (dtype with explicit byte order)."""
        return {"name": self.name, "dtype": self.dtype.str, "shape": list(self.shape)}


@dataclass(frozen=True)
class SnapshotRows:
    """A decoded snapshot: keys in file order and, per column, a read-only ``[rows, *shape]`` view of the blob."""

    keys: list[str]
    columns: dict[str, np.ndarray]


def _align(offset: int) -> int:
    return (offset + 7) & ~7


def _encode_keys(keys: Sequence[str]) -> tuple[np.ndarray, bytes]:
    """Byte length of each key and the concatenated UTF-8 bytes (one encode call when all keys are ASCII)."""
    joined = "".join(keys)
    blob = joined.encode("utf-8")
    if len(blob) == len(joined):
        lengths = np.fromiter(map(len, keys), dtype=_KEY_LENGTH_DTYPE, count=len(keys))
        return lengths, blob
    encoded = [key.encode("utf-8") for key in keys]
    lengths = np.fromiter(map(len, encoded), dtype=_KEY_LENGTH_DTYPE, count=len(keys))
    return lengths, b"".join(encoded)


def _decode_keys(lengths: np.ndarray, blob: bytes) -> list[str]:
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SnapshotError(f"snapshot keys are not valid UTF-8: {error}") from None
    ends = np.cumsum(lengths, dtype=np.int64)
    bounds = zip((ends - lengths).tolist(), ends.tolist(), strict=True)
    if len(text) == len(blob):  # all ASCII: byte offsets are character offsets
        return [text[a:b] for a, b in bounds]
    return [blob[a:b].decode("utf-8") for a, b in bounds]


def encode_rows(
    specs: Sequence[ColumnSpec], keys: Sequence[str], columns: Mapping[str, np.ndarray], rows: np.ndarray
) -> bytes:
    """Serialise ``keys`` and rows ``rows`` of every column (gathered straight into the output buffer)."""
    if len(keys) != len(rows):
        raise SnapshotError(f"{len(keys)} keys but {len(rows)} rows to export")
    n = len(keys)
    header = json.dumps({"columns": [spec.signature() for spec in specs]}, separators=(",", ":")).encode()
    lengths, key_blob = _encode_keys(keys)
    if n and int(lengths.max()) > MAX_KEY_BYTES:
        raise SnapshotError(f"a key is longer than {MAX_KEY_BYTES} UTF-8 bytes")
    offset = _align(_PREFIX.size + len(header) + lengths.nbytes + len(key_blob))
    column_offsets = []
    for spec in specs:
        column_offsets.append(offset)
        offset = _align(offset + n * spec.row_nbytes)
    buffer = bytearray(offset + _CRC.size)
    _PREFIX.pack_into(buffer, 0, MAGIC, FORMAT_VERSION, 0, len(header), n)
    position = _PREFIX.size
    buffer[position : position + len(header)] = header
    position += len(header)
    buffer[position : position + lengths.nbytes] = lengths.tobytes()
    position += lengths.nbytes
    buffer[position : position + len(key_blob)] = key_blob
    for spec, start in zip(specs, column_offsets, strict=True):
        target = np.frombuffer(buffer, dtype=spec.dtype, count=n * spec.row_nbytes // spec.dtype.itemsize, offset=start)
        np.take(columns[spec.name], rows, axis=0, out=target.reshape((n, *spec.shape)))
    _CRC.pack_into(buffer, offset, zlib.crc32(memoryview(buffer)[:offset]))
    return bytes(buffer)


def _parse_header(raw: bytes) -> list[ColumnSpec]:
    try:
        header = json.loads(raw)
        return [
            ColumnSpec(name=str(c["name"]), shape=tuple(int(d) for d in c["shape"]), dtype=np.dtype(c["dtype"]))
            for c in header["columns"]
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise SnapshotError(f"snapshot header is unreadable (corrupt data?): {error}") from None


def schema_differences(found: Sequence[ColumnSpec], expected: Sequence[ColumnSpec]) -> list[str]:
    """Human-readable differences between a snapshot's columns and a table's (empty when they match)."""
    have = {spec.name: spec for spec in found}
    want = {spec.name: spec for spec in expected}
    problems = [f"column {name!r} missing from snapshot" for name in want if name not in have]
    problems += [f"column {name!r} in snapshot is unknown here" for name in have if name not in want]
    for name in want.keys() & have.keys():
        a, b = have[name], want[name]
        if a.dtype.str != b.dtype.str:
            problems.append(f"column {name!r} has dtype {a.dtype.str} in snapshot but {b.dtype.str} here")
        if a.shape != b.shape:
            problems.append(f"column {name!r} has shape {a.shape} in snapshot but {b.shape} here")
    return sorted(problems)


def decode_rows(data: bytes, specs: Sequence[ColumnSpec], may_lack: frozenset[str] = frozenset()) -> SnapshotRows:
    """Parse and verify a snapshot written for ``specs``; column arrays are zero-copy views of ``data``. Columns
    named in ``may_lack`` (added to the layout after older snapshots were written) may be absent: the result then
    has no entry for them."""
    view = memoryview(data).cast("B")
    if len(view) < _PREFIX.size + _CRC.size:
        raise SnapshotError(f"snapshot is truncated: {len(view)} bytes is shorter than the fixed header")
    magic, version, _, header_length, n = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise SnapshotError(f"not a state snapshot: magic {bytes(magic)!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format version {version} is not supported (this build reads {FORMAT_VERSION})")
    position = _PREFIX.size
    keys_start = position + header_length + n * _KEY_LENGTH_DTYPE.itemsize
    if keys_start > len(view):
        raise SnapshotError(f"snapshot is truncated: {len(view)} bytes, its header alone needs {keys_start}")
    found = _parse_header(bytes(view[position : position + header_length]))
    present = {spec.name for spec in found}
    problems = schema_differences(found, [spec for spec in specs if spec.name in present or spec.name not in may_lack])
    if problems:
        raise SnapshotError("snapshot schema differs from this state table: " + "; ".join(problems))
    lengths = np.frombuffer(view, dtype=_KEY_LENGTH_DTYPE, count=n, offset=position + header_length)
    if n and not (lengths.min() >= 1 and lengths.max() <= MAX_KEY_BYTES):
        raise SnapshotError(f"snapshot has a key length outside 1..{MAX_KEY_BYTES} bytes (corrupt data?)")
    offset = _align(keys_start + int(lengths.sum(dtype=np.int64)))
    column_offsets = []
    for spec in found:
        column_offsets.append(offset)
        offset = _align(offset + n * spec.row_nbytes)
    if len(view) != offset + _CRC.size:
        raise SnapshotError(
            f"snapshot is truncated or has trailing bytes: header describes {offset + _CRC.size} bytes, got {len(view)}"
        )
    (stored_crc,) = _CRC.unpack_from(view, offset)
    if zlib.crc32(view[:offset]) != stored_crc:
        raise SnapshotError("snapshot checksum mismatch: the data is corrupt")
    keys = _decode_keys(lengths, bytes(view[keys_start : keys_start + int(lengths.sum(dtype=np.int64))]))
    if len(set(keys)) != len(keys):
        raise SnapshotError("snapshot lists a key more than once")
    columns = {
        spec.name: np.frombuffer(
            view, dtype=spec.dtype, count=n * spec.row_nbytes // spec.dtype.itemsize, offset=start
        ).reshape((n, *spec.shape))
        for spec, start in zip(found, column_offsets, strict=True)
    }
    return SnapshotRows(keys=keys, columns=columns)
