"""StateTable: key -> row mapping, flood guard, bad keys, recycling with zeroing, eviction, accounting."""

from __future__ import annotations

import numpy as np
import pytest

from rnncore.errors import StateError
from rnncore.state.table import MAX_KEY_BYTES, EventStatus, StateTable, status_reason

SCHEMA = {
    "recurrent": ((1, 8), np.float32),
    "norm": ((2, 1), np.float32),
    "last_time": ((), np.float64),
    "count": ((), np.int64),
}


def make_table(max_streams: int = 16, key_shards: int = 4) -> StateTable:
    return StateTable(SCHEMA, max_streams=max_streams, key_shards=key_shards)


def fill_rows(table: StateTable, rows: np.ndarray, value: float) -> None:
    for column in table.columns.values():
        column[rows] = value


def test_columns_are_allocated_once_with_the_schema_shapes() -> None:
    table = make_table(max_streams=10)
    assert table.columns["recurrent"].shape == (10, 1, 8)
    assert table.columns["norm"].dtype == np.float32
    assert table.columns["last_time"].shape == (10,)
    assert table.row_nbytes == 8 * 4 + 2 * 4 + 8 + 8


def test_new_keys_get_distinct_rows_and_known_keys_their_old_row() -> None:
    table = make_table()
    rows, status = table.rows_for(["a", "b", "a", "c"])
    assert status.tolist() == [0, 0, 0, 0]
    assert rows[0] == rows[2]
    assert len({rows[0], rows[1], rows[3]}) == 3
    again, _ = table.rows_for(["c", "b"])
    assert again.tolist() == [rows[3], rows[1]]
    assert len(table) == 3
    assert sorted(table.keys()) == ["a", "b", "c"]
    assert "a" in table and "zz" not in table


def test_rows_for_accepts_any_iterable_and_empty_batches() -> None:
    table = make_table()
    rows, status = table.rows_for(iter(["x", "y"]))
    assert rows.dtype == np.int64 and status.dtype == np.int8
    empty_rows, empty_status = table.rows_for([])
    assert empty_rows.shape == (0,) and empty_status.shape == (0,)


def test_invalid_keys_are_rejected_per_event_without_failing_the_batch() -> None:
    table = make_table()
    too_long = "k" * (MAX_KEY_BYTES + 1)
    multibyte_too_long = "é" * (MAX_KEY_BYTES // 2 + 1)  # 129 chars, 258 bytes
    longest_ok = "é" * (MAX_KEY_BYTES // 2)
    keys: list[object] = ["ok", too_long, "", 7, ["unhashable"], "\ud800", multibyte_too_long, longest_ok]
    rows, status = table.rows_for(keys)
    assert status.tolist() == [0, 3, 3, 3, 3, 3, 3, 0]
    assert (rows[status != 0] == -1).all()
    assert sorted(table.keys()) == sorted(["ok", longest_ok])


def test_flood_of_new_keys_is_refused_once_the_table_is_full() -> None:
    table = make_table(max_streams=4)
    table.rows_for(["a", "b"])
    rows, status = table.rows_for(["a", "n1", "n2", "n3", "b", "n4"])
    assert status.tolist() == [0, 0, 0, 2, 0, 2]
    assert rows[3] == -1 and rows[5] == -1
    assert len(table) == 4


def test_recycled_rows_are_zeroed_and_free_rows_reused() -> None:
    table = make_table(max_streams=2)
    rows, _ = table.rows_for(["a", "b"])
    fill_rows(table, rows, 5.0)
    assert table.remove(["a"]) == 1
    new_rows, status = table.rows_for(["c"])
    assert status[0] == 0 and new_rows[0] == rows[0]
    for column in table.columns.values():
        assert not column[new_rows[0]].any()
        assert (column[rows[1]] == 5).all()  # the other stream is untouched


def test_evict_idle_uses_last_time_and_reinsert_starts_fresh() -> None:
    table = make_table()
    rows, _ = table.rows_for(["old", "fresh", "edge"])
    fill_rows(table, rows, 1.0)
    table.columns["last_time"][rows] = [10.0, 95.0, 90.0]
    assert table.evict_idle(now=100.0, ttl_seconds=10.0) == 1
    assert sorted(table.keys()) == ["edge", "fresh"]
    assert table.evict_idle(now=100.0, ttl_seconds=10.0) == 0
    again, _ = table.rows_for(["old"])
    assert table.columns["count"][again[0]] == 0 and not table.columns["recurrent"][again[0]].any()


def test_evict_idle_without_a_time_column_is_a_clear_error() -> None:
    table = StateTable({"h": ((4,), np.float32)}, max_streams=4)
    with pytest.raises(StateError, match="last_time"):
        table.evict_idle(now=1.0, ttl_seconds=1.0)


def test_resident_bytes_counts_rows_and_keys() -> None:
    table = make_table(max_streams=1000)
    empty = table.resident_bytes()
    table.rows_for([f"sensor-{i}" for i in range(500)])
    grown = table.resident_bytes()
    assert grown - empty >= 500 * (table.row_nbytes + 50)
    table.remove([f"sensor-{i}" for i in range(250)])
    assert table.resident_bytes() < grown


def test_lookup_does_not_insert() -> None:
    table = make_table()
    table.rows_for(["a"])
    assert table.lookup(["a", "b", ["x"]]).tolist()[1:] == [-1, -1]
    assert len(table) == 1


@pytest.mark.parametrize(
    "schema",
    [{}, {"x": ((0,), np.float32)}, {"x": ((2,), object)}, {"x": "float32"}, {"": ((1,), np.float32)}],
    ids=["empty", "zero-dim", "object", "not-a-pair", "empty-name"],
)
def test_malformed_schemas_are_refused(schema: dict) -> None:
    with pytest.raises(StateError):
        StateTable(schema, max_streams=4)


def test_status_reasons_are_stable_strings() -> None:
    assert status_reason(EventStatus.OK) == "ok"
    assert status_reason(1) == "non_finite_value"
    assert status_reason(2) == "stream_table_full"
    assert status_reason(3) == "invalid_key"
    assert status_reason(42) == "unknown_status_42"


def test_many_keys_across_shards_stay_consistent() -> None:
    table = StateTable(SCHEMA, max_streams=5000, key_shards=64)
    keys = [f"s{i}" for i in range(5000)]
    rows, status = table.rows_for(keys)
    assert not status.any() and len(np.unique(rows)) == 5000
    table.remove(keys[::2])
    again, _ = table.rows_for(keys[1::2])
    assert again.tolist() == rows[1::2].tolist()
    assert len(table) == 2500
