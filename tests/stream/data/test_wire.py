"""One wire-event parser: the service's codec, the event-log reader and topic replay give the same bytes the
same fate (the same record, or the same reason), so a log accepted by `rnnwatch train` is what `serve` scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnncore.contract import EventRecord
from stream.data.eventlog import ReadSummary, read_jsonl
from stream.data.replay import decode_message
from stream.data.wire import RejectReason, parse_event
from stream.errors import EventRejectedError
from stream.service.codec import EventDecoder

PAYLOADS = [
    b'{"key": "a", "time": 10, "value": 1.5}',
    b'{"key": "a", "time": "1970-01-01T00:00:20Z", "values": [2.0]}',
    b'{"key": 7, "time": "30.5", "value": 3}',
    b'{"key": "a", "time": 1, "value": 1, "values": [9]}',  # value wins over its alias
    b'{"key": "a", "time": 1, "value": "3.5"}',  # numeric strings are refused everywhere
    b'{"key": "a", "time": 1, "value": NaN}',
    b'{"key": "a", "time": 1, "value": 1e39}',  # outside float32
    b'{"key": "a", "time": 1, "value": []}',
    b'{"key": "", "time": 1, "value": 1}',
    b'{"key": "' + b"k" * 300 + b'", "time": 1, "value": 1}',
    b'{"time": 1}',
    b"[1]",
    b"not json",
    b"[" * 1100 + b"]" * 1100,
]


def _codec_fate(payload: bytes) -> EventRecord | str:
    batch = EventDecoder(1).decode_batch([payload])
    if batch.rejected:
        return batch.rejected[0].reason
    return EventRecord(batch.keys[0], float(batch.times[0]), tuple(float(v) for v in batch.values[0]))


def _log_fate(payload: bytes, tmp_path: Path) -> EventRecord | str:
    path = tmp_path / "one.jsonl"
    path.write_bytes(payload + b"\n")
    summary = ReadSummary()
    records = list(read_jsonl(path, summary))
    return records[0] if records else next(iter(summary.skipped))


def _replay_fate(payload: bytes) -> EventRecord | str:
    try:
        return decode_message(payload, None)
    except EventRejectedError as error:
        return error.reason


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p[:40].decode(errors="replace") for p in PAYLOADS])
def test_codec_log_reader_and_replay_agree(payload: bytes, tmp_path: Path) -> None:
    codec = _codec_fate(payload)
    assert _log_fate(payload, tmp_path) == codec
    assert _replay_fate(payload) == codec


def test_the_rules_themselves() -> None:
    assert parse_event({"key": "a", "time": 1, "value": 1, "values": [9]}) == EventRecord("a", 1.0, (1.0,))
    with pytest.raises(EventRejectedError) as quoted:
        parse_event({"key": "a", "time": 1, "value": "3.5"})
    assert quoted.value.reason == RejectReason.BAD_TYPE
    with pytest.raises(EventRejectedError) as width:
        parse_event({"key": "a", "time": 1, "value": [1, 2]}, n_features=1)
    assert width.value.reason == RejectReason.WRONG_VECTOR_LENGTH
    assert parse_event({"time": 1, "value": 2}, b"from-message").key == "from-message"
