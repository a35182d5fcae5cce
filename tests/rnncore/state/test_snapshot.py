"""Snapshot export/import: bit-exact round trip, subsets, overwrite, and clear refusals of bad blobs."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rnncore.errors import SnapshotError, StateError, TableFullError
from rnncore.state.snapshot import MAGIC
from rnncore.state.table import StateTable

SCHEMA = {
    "recurrent": ((2, 3), np.float32),
    "last_time": ((), np.float64),
    "count": ((), np.int64),
    "flag": ((), np.int8),
}


def filled_table(keys: list[str], max_streams: int = 64, seed: int = 0) -> StateTable:
    table = StateTable(SCHEMA, max_streams=max_streams, key_shards=8)
    rows, status = table.rows_for(keys)
    assert not status.any()
    rng = np.random.default_rng(seed)
    for column in table.columns.values():
        raw = rng.integers(0, 256, size=(len(rows), *column.shape[1:], column.dtype.itemsize), dtype=np.uint8)
        column[rows] = raw.view(column.dtype).reshape(len(rows), *column.shape[1:])
    return table


def row_bytes(table: StateTable, key: str) -> bytes:
    (row,) = table.lookup([key])
    return b"".join(column[row].tobytes() for column in table.columns.values())


KEYS = ["a", "sensor-1", "ünïcødé-κλειδί", "x" * 256, "🌡️-42"]


def test_round_trip_is_bit_exact_including_nan_payloads() -> None:
    source = filled_table(KEYS)
    (row,) = source.lookup(["a"])
    payloads = np.array([0x7FC00001, 0xFFA00ABC, 0x7F800001], dtype=np.uint32)  # quiet, negative, signalling
    source.columns["recurrent"][row].reshape(-1)[:3] = payloads.view(np.float32)
    source.columns["last_time"][row] = np.array([0x7FF8DEADBEEF0001], dtype=np.uint64).view(np.float64)[0]
    target = StateTable(SCHEMA, max_streams=64, key_shards=2)
    assert target.import_rows(source.export_rows()) == len(KEYS)
    assert sorted(target.keys()) == sorted(KEYS)
    for key in KEYS:
        assert row_bytes(target, key) == row_bytes(source, key)
    (new_row,) = target.lookup(["a"])
    assert target.columns["recurrent"][new_row].reshape(-1)[:3].view(np.uint32).tolist() == payloads.tolist()


def test_subset_export_skips_unknown_and_duplicate_keys() -> None:
    source = filled_table(KEYS)
    blob = source.export_rows(["sensor-1", "nope", "sensor-1", "a"])
    target = StateTable(SCHEMA, max_streams=8)
    assert target.import_rows(blob) == 2
    assert sorted(target.keys()) == ["a", "sensor-1"]


def test_import_overwrites_existing_keys_and_leaves_others_alone() -> None:
    source = filled_table(["a", "b"], seed=1)
    target = filled_table(["b", "c"], seed=2)
    c_before = row_bytes(target, "c")
    target.import_rows(source.export_rows())
    assert row_bytes(target, "b") == row_bytes(source, "b")
    assert row_bytes(target, "a") == row_bytes(source, "a")
    assert row_bytes(target, "c") == c_before
    assert len(target) == 3


def test_empty_export_round_trips() -> None:
    blob = StateTable(SCHEMA, max_streams=4).export_rows()
    target = StateTable(SCHEMA, max_streams=4)
    assert target.import_rows(blob) == 0 and len(target) == 0


def test_schema_mismatch_names_the_difference() -> None:
    blob = filled_table(KEYS).export_rows()
    other = dict(SCHEMA)
    other["recurrent"] = ((2, 4), np.float32)
    other["count"] = ((), np.int32)
    del other["flag"]
    other["extra"] = ((1,), np.float32)
    with pytest.raises(SnapshotError) as info:
        StateTable(other, max_streams=64).import_rows(blob)
    message = str(info.value)
    expected = ["'recurrent' has shape (2, 3) in snapshot but (2, 4)", "'count' has dtype <i8", "'flag'", "'extra'"]
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize("cut", [0, 10, 30, -200, -5, -1], ids=lambda c: f"cut{c}")
def test_truncated_blob_is_refused(cut: int) -> None:
    blob = filled_table(KEYS).export_rows()
    with pytest.raises(SnapshotError, match="truncated"):
        StateTable(SCHEMA, max_streams=64).import_rows(blob[:cut])


def test_flipped_bit_is_caught_by_the_checksum() -> None:
    blob = bytearray(filled_table(KEYS).export_rows())
    blob[-20] ^= 0x10
    target = StateTable(SCHEMA, max_streams=64)
    with pytest.raises(SnapshotError, match="checksum"):
        target.import_rows(bytes(blob))
    assert len(target) == 0


def test_wrong_magic_and_version_are_refused() -> None:
    blob = filled_table(KEYS).export_rows()
    with pytest.raises(SnapshotError, match="not a state snapshot"):
        StateTable(SCHEMA, max_streams=64).import_rows(b"XXXXXXXX" + blob[8:])
    future = blob[:8] + struct.pack("<H", 99) + blob[10:]
    assert future.startswith(MAGIC)
    with pytest.raises(SnapshotError, match="version 99"):
        StateTable(SCHEMA, max_streams=64).import_rows(future)


def test_import_that_does_not_fit_changes_nothing() -> None:
    blob = filled_table(KEYS).export_rows()
    target = filled_table(["q", "r"], max_streams=5)
    before = {key: row_bytes(target, key) for key in ["q", "r"]}
    with pytest.raises(TableFullError, match="5 new streams"):
        target.import_rows(blob)
    assert sorted(target.keys()) == ["q", "r"]
    assert {key: row_bytes(target, key) for key in ["q", "r"]} == before


def test_large_round_trip_preserves_row_association() -> None:
    keys = [f"s{i}" for i in range(3000)]
    source = filled_table(keys, max_streams=4000)
    source.remove(keys[::3])  # holes and a free list in the source
    target = StateTable(SCHEMA, max_streams=4000)
    target.rows_for(["pre-existing"])
    target.import_rows(source.export_rows())
    for key in keys[1::97]:
        assert row_bytes(target, key) == row_bytes(source, key)


def test_a_column_added_later_restores_an_older_snapshot_zeroed_and_only_where_allowed() -> None:
    old = filled_table(KEYS)
    blob = old.export_rows()
    newer = StateTable({**SCHEMA, "smooth": ((), np.float64)}, max_streams=64, key_shards=8)
    with pytest.raises(SnapshotError, match="'smooth' missing from snapshot"):
        newer.import_rows(blob)  # not declared late: refused as before
    newer.allow_missing_on_import(["smooth"])
    (stale,) = newer.rows_for(["a"])[0]
    newer.columns["smooth"][stale] = 7.0  # a row the import overwrites starts at zero too
    assert newer.import_rows(blob) == len(KEYS)
    for key in KEYS:
        (row,) = newer.lookup([key])
        assert newer.columns["smooth"][row] == 0.0
        assert b"".join(newer.columns[name][row].tobytes() for name in SCHEMA) == row_bytes(old, key)
    other = StateTable({k: v for k, v in SCHEMA.items() if k != "flag"} | {"smooth": ((), np.float64)}, max_streams=8)
    other.allow_missing_on_import(["smooth"])
    with pytest.raises(SnapshotError, match="'flag' in snapshot is unknown here"):
        other.import_rows(blob)  # a late column excuses nothing else
    with pytest.raises(StateError, match="no such columns"):
        newer.allow_missing_on_import(["nope"])
