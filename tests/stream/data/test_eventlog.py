"""Event log readers validate every row and count skips by reason; the rolling writer's files read back."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from stream.data.eventlog import EventRecord, ReadSummary, RollingEventLogWriter, read_csv, read_event_logs, read_jsonl
from stream.data.wire import parse_time
from stream.errors import EventLogError


def test_jsonl_accepts_value_values_and_iso_times_and_counts_every_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"key": "a", "time": 10, "value": 1.5}',
                '{"key": "b", "time": "1970-01-01T00:00:20Z", "values": [2.0]}',
                '{"key": 7, "time": "30.5", "value": 3}',
                "not json",
                "[1, 2]",
                '{"time": 1, "value": 1}',
                '{"key": "a", "value": 1}',
                '{"key": "a", "time": 1}',
                '{"key": "a", "time": "yesterday", "value": 1}',
                '{"key": "a", "time": 1, "value": "x"}',
                '{"key": "a", "time": 1, "value": NaN}',
                '{"key": "a", "time": 1, "value": [1, 2]}',
                '{"key": "", "time": 1, "value": 1}',
                '{"key": "a", "time": true, "value": 1}',
                "",
            ]
        )
        + "\n"
    )
    summary = ReadSummary()
    records = list(read_jsonl(path, summary))
    assert records == [
        EventRecord("a", 10.0, (1.5,)),
        EventRecord("b", 20.0, (2.0,)),
        EventRecord("7", 30.5, (3.0,)),
    ]
    assert summary.rows == 15 and summary.accepted == 3
    assert summary.skipped == {
        # the dead-letter reasons the service gives the same bytes (stream.data.wire)
        "invalid_json": 1,  # "not json"
        "non_finite_value": 1,  # the bare NaN token
        "bad_type": 5,  # [1, 2], "yesterday", value "x", key "", time true
        "missing_field": 3,
        "wrong_vector_length": 1,
        "blank_line": 1,
    }
    assert sum(summary.skipped.values()) + summary.accepted == summary.rows
    assert summary.examples[0] == f"{path}:4: invalid_json"


def test_csv_single_and_multi_value_layouts(tmp_path: Path) -> None:
    single = tmp_path / "one.csv"
    single.write_text("key,time,value\ns1,1.0,2.5\ns2,2024-01-01T00:00:00+01:00,3\ns1,3.0,inf\ns1,4.0\n")
    summary = ReadSummary()
    assert list(read_csv(single, summary)) == [
        EventRecord("s1", 1.0, (2.5,)),
        EventRecord("s2", 1704063600.0, (3.0,)),
    ]
    assert summary.skipped == {"non_finite_value": 1, "column_count": 1}
    multi = tmp_path / "multi.csv"
    multi.write_text("key,time,v0,v1\nx,1,1,2\nx,2,3,oops\n")
    summary = ReadSummary()
    assert list(read_csv(multi, summary)) == [EventRecord("x", 1.0, (1.0, 2.0))]
    assert summary.skipped == {"bad_type": 1} and summary.n_features == 2


def test_parse_time_treats_naive_iso_as_utc() -> None:
    assert parse_time("1970-01-02T00:00:00") == 86400.0
    assert parse_time(1.5) == 1.5
    assert parse_time("2026-11-24T10:00:00.250Z") == pytest.approx(1795514400.25)


def test_reading_directories_and_gzip_and_failing_clearly_when_nothing_is_usable(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"key": "a", "time": 1, "value": 1}\n')
    with gzip.open(tmp_path / "b.csv.gz", "wt") as handle:
        handle.write("key,time,value\nb,2,2\n")
    (tmp_path / "ignored.txt").write_text("whatever")
    records, summary = read_event_logs([tmp_path])
    assert sorted(records) == [EventRecord("a", 1.0, (1.0,)), EventRecord("b", 2.0, (2.0,))]
    assert summary.files == 2

    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n{}\n")
    with pytest.raises(EventLogError, match="no usable rows.*invalid_json=1.*bad.jsonl:1"):
        read_event_logs([bad])
    with pytest.raises(EventLogError, match="does not exist"):
        read_event_logs([tmp_path / "missing.jsonl"])
    with pytest.raises(EventLogError, match="cannot tell the format"):
        read_event_logs([tmp_path / "ignored.txt"])


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_rolling_writer_rolls_by_size_and_reads_back_everything(tmp_path: Path, compress: bool) -> None:
    records = [EventRecord(f"s{i % 3}", 1000.0 + i, (float(i),) if i % 2 else (float(i), -1.0)) for i in range(200)]
    records = [r for r in records if len(r.values) == 1]
    with RollingEventLogWriter(tmp_path, max_bytes=1000, compress=compress) as writer:
        writer.write(records[:50])
        assert not list(tmp_path.glob("*.part")) or writer.completed  # finished files are published
        writer.write(records[50:])
    assert len(writer.completed) > 1
    assert not list(tmp_path.glob("*.part"))
    if not compress:
        assert all(p.stat().st_size <= 1000 for p in writer.completed)
    back, summary = read_event_logs([tmp_path])
    assert back == records and summary.skipped == {}


def test_writer_rolls_by_age(tmp_path: Path) -> None:
    writer = RollingEventLogWriter(tmp_path, max_seconds=0.0)
    writer.write([EventRecord("a", 1.0, (1.0,)), EventRecord("a", 2.0, (2.0,))])
    writer.close()
    assert len(writer.completed) == 2


def test_csv_columns_are_found_by_their_header_names(tmp_path: Path) -> None:
    moved = tmp_path / "moved.csv"
    moved.write_text("pressure,time,key,flow\n1.5,10,pump-1,7\n2.5,20,pump-2,8\n")
    assert list(read_csv(moved)) == [EventRecord("pump-1", 10.0, (1.5, 7.0)), EventRecord("pump-2", 20.0, (2.5, 8.0))]
    bare = tmp_path / "bare.csv"
    bare.write_text("pump-1,10,1.5\npump-1,yesterday,1\n")
    summary = ReadSummary()
    assert list(read_csv(bare, summary)) == [EventRecord("pump-1", 10.0, (1.5,))]
    assert summary.skipped == {"bad_type": 1}
    unnamed = tmp_path / "unnamed.csv"
    positional = tmp_path / "positional.csv"
    positional.write_text("key,timestamp,v\npump-1,10,1.5\n")
    assert list(read_csv(positional)) == [EventRecord("pump-1", 10.0, (1.5,))]
    unnamed.write_text("sensor,timestamp,v\npump-1,10,1.5\n")
    with pytest.raises(EventLogError, match="header naming 'key' and 'time'"):
        list(read_csv(unnamed))
