"""State changelog: snapshot + delta records restore exactly the state written, under compaction and failures."""

from __future__ import annotations

import random

import pytest

from stream.errors import ChangelogError
from stream.service.changelog import (
    ChangelogPosition,
    ChangelogRecord,
    ChangelogWriter,
    RecordKind,
    decode_record,
    encode_record,
    restore_from_records,
)
from tests.stream.fake_detector import FakeDetector


def _run(n_batches: int, snapshot_every: int, chunk_bytes: int, seed: int = 0):
    """Drive a detector and writer like the service does; return (detector, all changelog records in order)."""
    rng = random.Random(seed)
    detector = FakeDetector()
    writer = ChangelogWriter(
        snapshot_every=snapshot_every, chunk_bytes=chunk_bytes, row_bytes=24, position=ChangelogPosition()
    )
    log: list[tuple[bytes, bytes | None]] = []
    offset = 0
    for _ in range(n_batches):
        keys = [f"s{rng.randrange(30)}" for _ in range(rng.randrange(1, 8))]
        detector.step(keys, [float(offset + i) for i in range(len(keys))], [rng.random() for _ in keys])
        offset += len(keys)
        if writer.needs_snapshot():
            log.extend(writer.snapshot(detector, detector.table.keys(), offset))
        else:
            log.extend(writer.delta(detector, list(dict.fromkeys(keys)), offset))
    return detector, writer, log, offset


def _compact(log: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes | None]]:
    latest: dict[bytes, bytes | None] = {}
    for key, value in log:
        latest.pop(key, None)
        latest[key] = value
    return [(k, v) for k, v in latest.items() if v is not None]


@pytest.mark.parametrize(
    ("snapshot_every", "chunk_bytes"),
    [(1, 10_000), (5, 100), (50, 200)],
    ids=["snapshot-every-batch", "small-chunks", "long-delta-runs"],
)
def test_restore_reproduces_the_state_and_offset(snapshot_every: int, chunk_bytes: int) -> None:
    detector, writer, log, offset = _run(60, snapshot_every, chunk_bytes)
    for records in (log, _compact(log)):
        restored = FakeDetector()
        position = restore_from_records(records, restored)
        assert restored.state == detector.state
        assert position.next_offset == offset
        assert position.generation == writer.position.generation
        assert position.deltas == writer.position.deltas


def test_compaction_bounds_the_number_of_keys() -> None:
    _, _, log, _ = _run(200, snapshot_every=10, chunk_bytes=200)
    keys = {k for k, _ in _compact(log)}
    # 2 rows per chunk: a batch (<= 7 keys) writes <= 4 delta chunks, a snapshot (<= 30 streams) 15 chunks;
    # per key parity at most snapshot_every + 3 delta slots and 15 snapshot slots survive compaction.
    assert 30 < len(keys) <= 2 * (10 + 3) + 2 * 15


def test_half_written_snapshot_falls_back_to_the_previous_generation() -> None:
    detector, writer, log, _ = _run(12, snapshot_every=5, chunk_bytes=100)
    before = {k: list(v) for k, v in detector.state.items()}
    before_offset = writer.position.next_offset
    detector.step(["s1", "s2"], [1e6, 1e6], [5.0, 6.0])
    snapshot = writer.snapshot(detector, detector.table.keys(), 10_000)
    assert len(snapshot) > 2
    restored = FakeDetector()
    position = restore_from_records(log + snapshot[:-1], restored)  # the last chunk never arrived
    assert restored.state == before and position.next_offset == before_offset


def test_a_gap_in_deltas_stops_the_replay_there() -> None:
    detector, writer, log, _ = _run(1, snapshot_every=100, chunk_bytes=10_000)
    first = writer.delta(detector, [], 100)
    detector.step(["new"], [1.0], [1.0])
    second = writer.delta(detector, ["new"], 200)
    restored = FakeDetector()
    position = restore_from_records(log + second, restored)  # delta 0 lost, delta 1 must not apply
    assert "new" not in restored.state and position.deltas == 0
    position = restore_from_records(log + first + second, FakeDetector())
    assert position.deltas == 2 and position.next_offset == 200


def test_smaller_snapshot_tombstones_stale_chunks() -> None:
    detector = FakeDetector()
    writer = ChangelogWriter(snapshot_every=1, chunk_bytes=100, row_bytes=24, position=ChangelogPosition())
    detector.step([f"k{i}" for i in range(10)], [0.0] * 10, [1.0] * 10)
    big = writer.snapshot(detector, detector.table.keys(), 10)
    writer.snapshot(detector, detector.table.keys(), 10)  # the other parity
    detector.evict_idle(now=100.0, ttl_seconds=1.0)
    small = writer.snapshot(detector, detector.table.keys(), 11)
    assert len(big) == 10 and sum(v is None for _, v in small) == 9
    restored = FakeDetector()
    restore_from_records(big + small, restored)
    assert restored.state == {}


def test_foreign_or_truncated_records_are_refused() -> None:
    with pytest.raises(ChangelogError, match="shorter"):
        decode_record(b"k", b"abc")
    with pytest.raises(ChangelogError, match="not an rnnwatch"):
        decode_record(b"k", b"X" * 64)
    record = ChangelogRecord(RecordKind.DELTA, 3, 77, 4, 0, b"payload")
    assert decode_record(b"k", encode_record(record)) == record
