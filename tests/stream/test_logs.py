"""Structured logs: one JSON object per record with the standard fields, extras and exceptions."""

from __future__ import annotations

import logging

import orjson

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
