"""State changelog format: per-partition state as snapshot and delta records on a compacted Kafka topic.

Input partition ``p`` keeps its state in changelog partition ``p``. Records (key -> value):

* ``snap/<g%2>/<c>``: chunk ``c`` of ``n`` of full snapshot generation ``g`` (``Detector.snapshot`` bytes of a
  subset of the streams).
* ``delta/<g%2>/<s>``: the ``s``-th delta since snapshot ``g``: the full rows of the streams one batch touched.

Each value starts with a fixed header (magic, kind, generation, next input offset, index, count) followed by
the detector snapshot bytes. Compaction keeps the latest value per key, so the topic holds at most two
snapshot generations (alternating key slots, so a half-written snapshot never destroys the last complete one)
and their deltas. Restore: take the newest generation whose chunks are all present, load its chunks, then
its deltas in order; the state then reflects every input offset below the largest ``next_offset`` applied.
A new snapshot is written when a generation reaches ``snapshot_every`` deltas; chunk keys the new snapshot
no longer uses are deleted with tombstones.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from stream.errors import ChangelogError

MAGIC = b"RNWCLOG1"
_HEADER = struct.Struct("<8sBQqII")  # magic, kind, generation, next_offset, index, count


class RecordKind(IntEnum):
    """What a changelog record holds."""

    SNAPSHOT = 1
    DELTA = 2


class SnapshotSource(Protocol):
    """What the changelog needs from a detector: export and import of rows by stream key."""

    def snapshot(self, keys: Iterable[str] | None = None) -> bytes: ...

    def restore(self, data: bytes) -> int: ...


@dataclass(frozen=True)
class ChangelogRecord:
    """One decoded changelog value."""

    kind: RecordKind
    generation: int
    next_offset: int
    index: int
    count: int
    payload: bytes


def record_key(kind: RecordKind, generation: int, index: int) -> bytes:
    """The compaction key of a snapshot chunk or delta slot."""
    prefix = "snap" if kind == RecordKind.SNAPSHOT else "delta"
    return f"{prefix}/{generation % 2}/{index}".encode()


def encode_record(record: ChangelogRecord) -> bytes:
    """Header + payload bytes."""
    header = _HEADER.pack(MAGIC, int(record.kind), record.generation, record.next_offset, record.index, record.count)
    return header + record.payload


def decode_record(key: bytes, value: bytes) -> ChangelogRecord:
    """Parse a changelog value; ``ChangelogError`` when it is not one of ours."""
    if len(value) < _HEADER.size:
        raise ChangelogError(f"changelog record {key!r} is {len(value)} bytes, shorter than its header")
    magic, kind, generation, next_offset, index, count = _HEADER.unpack_from(value)
    if magic != MAGIC or kind not in (RecordKind.SNAPSHOT, RecordKind.DELTA):
        raise ChangelogError(f"changelog record {key!r} is not an rnnwatch state record (magic {magic!r})")
    return ChangelogRecord(RecordKind(kind), generation, next_offset, index, count, bytes(value[_HEADER.size :]))


def chunk_keys(keys: Sequence[str], per_chunk: int) -> list[Sequence[str]]:
    """Split stream keys into chunks of at most ``per_chunk`` (always at least one chunk, maybe empty)."""
    per_chunk = max(1, per_chunk)
    return [keys[i : i + per_chunk] for i in range(0, len(keys), per_chunk)] or [[]]


@dataclass
class ChangelogPosition:
    """Where a partition's changelog stands: current generation, deltas written in it, snapshot chunk counts."""

    generation: int = -1  # -1: nothing written yet
    deltas: int = 0
    snapshot_chunks: dict[int, int] = field(default_factory=dict)  # parity -> chunks of the last snapshot there
    next_offset: int = -1  # input offset the restored state reflects (-1: unknown / no state)
    skipped: int = 0  # records restore skipped: not rnnwatch state records (a stray write to the topic)


class ChangelogWriter:
    """Builds the changelog records of one partition; the caller sends them (in the batch's transaction)."""

    def __init__(self, *, snapshot_every: int, chunk_bytes: int, row_bytes: int, position: ChangelogPosition) -> None:
        self.snapshot_every = snapshot_every
        self.rows_per_chunk = max(1, chunk_bytes // max(1, row_bytes + 64))
        self.position = position

    def needs_snapshot(self) -> bool:
        """True when the next write should be a full snapshot (no generation yet, or enough deltas)."""
        return self.position.generation < 0 or self.position.deltas >= self.snapshot_every

    def snapshot(
        self, source: SnapshotSource, keys: Sequence[str], next_offset: int
    ) -> list[tuple[bytes, bytes | None]]:
        """Full-snapshot records of a new generation, plus tombstones for chunk slots it no longer uses."""
        pos = self.position
        generation = pos.generation + 1
        chunks = chunk_keys(keys, self.rows_per_chunk)
        records: list[tuple[bytes, bytes | None]] = []
        for index, chunk in enumerate(chunks):
            record = ChangelogRecord(
                RecordKind.SNAPSHOT, generation, next_offset, index, len(chunks), source.snapshot(chunk)
            )
            records.append((record_key(RecordKind.SNAPSHOT, generation, index), encode_record(record)))
        for stale in range(len(chunks), pos.snapshot_chunks.get(generation % 2, 0)):
            records.append((record_key(RecordKind.SNAPSHOT, generation, stale), None))
        pos.generation, pos.deltas, pos.next_offset = generation, 0, next_offset
        pos.snapshot_chunks[generation % 2] = len(chunks)
        return records

    def delta(self, source: SnapshotSource, touched: Sequence[str], next_offset: int) -> list[tuple[bytes, bytes]]:
        """Delta records with the current rows of the touched streams (one per chunk)."""
        pos = self.position
        records = []
        for chunk in chunk_keys(touched, self.rows_per_chunk):
            payload = source.snapshot(chunk)
            record = ChangelogRecord(RecordKind.DELTA, pos.generation, next_offset, pos.deltas, 0, payload)
            records.append((record_key(RecordKind.DELTA, pos.generation, pos.deltas), encode_record(record)))
            pos.deltas += 1
        pos.next_offset = next_offset
        return records


def restore_from_records(records: Iterable[tuple[bytes, bytes | None]], target: SnapshotSource) -> ChangelogPosition:
    """Replay one changelog partition's records (in offset order) into ``target``; returns where it stands.

    Compaction is emulated (the latest value per key wins; a tombstone deletes), so the result is the same
    whether or not the broker has compacted the topic yet. A record that is not an rnnwatch state record (too
    short, another magic: something else wrote to the topic) is skipped and counted in ``skipped``: it holds
    no state, and refusing it would keep the partition from ever being scored. A state record whose payload
    cannot be restored raises ``rnncore.snapshot.SnapshotError`` (the state would be wrong, not just older).
    """
    latest: dict[bytes, bytes] = {}
    for key, value in records:
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    decoded: list[ChangelogRecord] = []
    position = ChangelogPosition()
    for key, value in latest.items():
        try:
            decoded.append(decode_record(key, value))
        except ChangelogError:
            position.skipped += 1
    snapshots: dict[int, dict[int, ChangelogRecord]] = {}
    for record in decoded:
        if record.kind == RecordKind.SNAPSHOT:
            snapshots.setdefault(record.generation, {})[record.index] = record
    for generation, chunks in snapshots.items():
        used = max(chunks) + 1
        position.snapshot_chunks[generation % 2] = max(position.snapshot_chunks.get(generation % 2, 0), used)
    complete = [g for g, chunks in snapshots.items() if all(i in chunks for i in range(chunks[max(chunks)].count))]
    if not complete:
        return position
    generation = max(complete)
    chunks = snapshots[generation]
    for index in range(chunks[0].count):
        target.restore(chunks[index].payload)
    position.generation, position.next_offset = generation, chunks[0].next_offset
    deltas = sorted(
        (r for r in decoded if r.kind == RecordKind.DELTA and r.generation == generation), key=lambda r: r.index
    )
    for expected, record in enumerate(deltas):
        if record.index != expected:  # a gap: later deltas would apply to missing history
            break
        target.restore(record.payload)
        position.deltas = expected + 1
        position.next_offset = max(position.next_offset, record.next_offset)
    return position
