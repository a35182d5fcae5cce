"""The demo's live bar (tqdm) fits an 80-column terminal, redraws in place and says how long is left."""

from __future__ import annotations

import io
import time

import pytest

from stream.demo import progress
from stream.demo.progress import ProgressLine
from stream.service.metrics import ServiceMetrics


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_fits_80_columns_and_has_an_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    metrics = ServiceMetrics()
    metrics.events_scored.inc(0)
    out = _Terminal()
    line = ProgressLine(metrics, total=100_000_000, out=out)
    line.show(sent=12_345_678, anomalies_read=1_234)
    metrics.events_scored.inc(50_000)
    metrics.anomalies.inc(777)
    metrics.consumer_lag.labels(partition="0").set(123_456)
    time.sleep(0.05)
    line.show(sent=12_395_678, anomalies_read=9_999)
    line.finish()
    frames = [f for f in out.getvalue().split("\r") if f.strip()]
    assert len(frames) >= 2 and out.getvalue().endswith("\n")  # redrawn in place, a new line at the end
    assert all(len(frame.rstrip("\n")) <= 79 for frame in frames)  # the 80-column window
    last = frames[-1]
    assert "50.0k/100M" in last and "ETA 0" in last and "flags 777 (9,999 read back)" in last, last


def test_without_tqdm_the_same_numbers_are_one_line_cut_to_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(progress, "tqdm_class", lambda: None)
    metrics = ServiceMetrics()
    out = _Terminal()
    line = ProgressLine(metrics, total=100_000_000, out=out)
    line.show(sent=12_345_678, anomalies_read=1_234)
    metrics.events_scored.inc(50_000)
    metrics.anomalies.inc(777)
    line._last = (time.monotonic() - 1.0, 12_345_678, 0)  # one second since the first frame
    line.show(sent=12_395_678, anomalies_read=9_999)
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 2 and all(frame.endswith("\x1b[K") for frame in frames)
    assert all(len(frame.removesuffix("\x1b[K")) <= 79 for frame in frames)
    assert "/100.0M" in frames[1] and "flags 777" in frames[1] and "ETA" in frames[1]


def test_a_pipe_gets_whole_lines_and_not_one_a_second() -> None:
    out = io.StringIO()
    line = ProgressLine(ServiceMetrics(), out=out, pipe_interval=10.0)
    line.show(sent=5, anomalies_read=0)  # the first call: a line at once
    assert out.getvalue().endswith("\n") and "\r" not in out.getvalue()
    line.show(sent=6, anomalies_read=0)  # within the interval: nothing
    assert out.getvalue().count("\n") == 1
    assert line._last_written is not None
    line._last_written -= 10.0  # the interval has passed
    line.show(sent=7, anomalies_read=0)
    assert out.getvalue().count("\n") == 2 and "sent 7" in out.getvalue().splitlines()[-1]
