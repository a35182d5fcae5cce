"""StateTable against an obvious reference model (a set of keys and a capacity), over random operation sequences."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.state.table import MAX_KEY_BYTES, StateTable

SCHEMA = {"h": ((3,), np.float32), "last_time": ((), np.float64), "count": ((), np.int64)}

keys = st.one_of(
    st.sampled_from([f"k{i}" for i in range(12)]),  # a small pool so keys repeat and come back after removal
    st.sampled_from(["", "x" * (MAX_KEY_BYTES + 1), "\ud800"]),  # always rejected
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.lists(keys, max_size=10)),
        st.tuples(st.just("remove"), st.lists(keys, max_size=4)),
        st.tuples(st.just("evict"), st.floats(0, 10)),
        st.tuples(st.just("roundtrip"), st.lists(keys, max_size=6)),
    ),
    max_size=25,
)


def reference_status(resident: set[str], capacity: int, batch: list[str]) -> list[int]:
    """Per-event status the table must report, inserting new valid keys into ``resident`` in arrival order."""
    status = []
    for key in batch:
        if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES or "\ud800" in key:
            status.append(3)
        elif key in resident:
            status.append(0)
        elif len(resident) < capacity:
            resident.add(key)
            status.append(0)
        else:
            status.append(2)
    return status


@settings(max_examples=150, deadline=None)
@given(capacity=st.integers(1, 8), ops=operations)
def test_table_matches_the_reference_model(capacity: int, ops: list[tuple[str, object]]) -> None:
    table = StateTable(SCHEMA, max_streams=capacity, key_shards=2)
    resident: set[str] = set()
    stamp = 0.0
    for op, arg in ops:
        stamp += 1.0
        if op == "insert":
            assert isinstance(arg, list)
            before = set(resident)
            expected = reference_status(resident, capacity, arg)
            rows, status = table.rows_for(arg)
            assert status.tolist() == expected
            assert ((rows >= 0) == (status == 0)).all()
            for key, row in zip(arg, rows.tolist(), strict=True):
                if row >= 0 and key not in before:  # a new stream starts from a zeroed row
                    assert table.columns["count"][row] == 0 and not table.columns["h"][row].any()
            for row in rows[rows >= 0].tolist():  # then "the kernel" writes the row
                table.columns["h"][row] = stamp
                table.columns["last_time"][row] = stamp
                table.columns["count"][row] += 1
        elif op == "remove":
            assert isinstance(arg, list)
            assert table.remove(arg) == len(resident & set(arg))
            resident -= set(arg)
        elif op == "evict":
            assert isinstance(arg, float)
            cutoff = stamp - arg
            idle = {key for key in resident if table.columns["last_time"][table.lookup([key])[0]] < cutoff}
            assert table.evict_idle(now=stamp, ttl_seconds=arg) == len(idle)
            resident -= idle
        else:
            assert isinstance(arg, list)
            subset = [key for key in arg if key in resident]
            saved = {key: table.columns["h"][table.lookup([key])[0]].tobytes() for key in subset}
            assert table.import_rows(table.export_rows(arg)) == len(set(subset))
            assert {key: table.columns["h"][table.lookup([key])[0]].tobytes() for key in subset} == saved
        assert set(table.keys()) == resident and len(table) == len(resident)
        rows = table.lookup(sorted(resident))
        assert len(set(rows.tolist())) == len(resident) and ((rows >= 0) & (rows < capacity)).all()
