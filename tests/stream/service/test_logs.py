"""Structured logs: one JSON object per record with the standard fields, extras and exceptions."""

from __future__ import annotations

import logging

import orjson
import pytest

from stream.service.logs import JsonLogFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("stream.service.app", logging.WARNING, __file__, 1, "lag %d on %s", (5, "p0"), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_level_logger_message_and_extras() -> None:
    entry = orjson.loads(JsonLogFormatter().format(_record(partition=3)))
    assert entry["level"] == "WARNING" and entry["logger"] == "stream.service.app"
    assert entry["msg"] == "lag 5 on p0" and entry["partition"] == 3
    assert entry["ts"].endswith("Z") and "T" in entry["ts"]


def test_exceptions_are_included_as_text() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    entry = orjson.loads(JsonLogFormatter().format(record))
    assert "ValueError: boom" in entry["exc"]


def test_the_status_line_reports_rates_totals_and_lag_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    from stream.service.metrics import ServiceMetrics
    from stream.service.status_log import StatusLog

    metrics = ServiceMetrics()
    status = StatusLog(metrics, interval_s=60.0)
    start = status._last_time
    metrics.events_scored.inc(120_000)
    metrics.events_dead_lettered.labels(reason="bad_type").inc(2)
    metrics.events_dead_lettered.labels(reason="oversized").inc(1)
    metrics.consumer_lag.labels(partition="0").set(10)
    metrics.consumer_lag.labels(partition="1").set(5)
    with caplog.at_level(logging.INFO, logger="stream.service.status"):
        assert not status.maybe_log(start + 30.0)
        assert status.maybe_log(start + 60.0)
    line = caplog.records[-1].getMessage()
    assert "2,000 events/s" in line and "120,000 scored" in line and "3 dead letters" in line and "lag 15" in line
    assert not StatusLog(metrics, interval_s=0).maybe_log(start + 1e6)  # 0: off
