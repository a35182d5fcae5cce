"""Live progress of the demo in the terminal: one refreshing bar of events scored, rate, time left, anomalies, lag.

On a terminal it is a tqdm bar (the project's progress library, as for training and the benchmarks) sized to the
window each time it redraws, so it stays in place instead of wrapping into a trail in an 80-column window; without
tqdm, the same numbers as one line cut to the window. A pipe or a file (``run.sh | tee``, CI) gets a whole line at
the first call and then one every ``PIPE_INTERVAL_S``, not a line a second."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from stream.commands.progress import tqdm_class
from stream.service.metrics import ServiceMetrics

PIPE_INTERVAL_S = 10.0  # seconds between two lines when the output is not a terminal
_BAR = "{desc} {n_fmt}/{total_fmt} {rate_fmt} ETA {remaining}{postfix}"  # no bar graphic: the numbers fit 80


def total_lag(metrics: ServiceMetrics) -> int:
    """Sum of the per-partition consumer lag gauge."""
    lag = 0.0
    for family in metrics.consumer_lag.collect():
        lag += sum(sample.value for sample in family.samples)
    return int(lag)


def _short(n: float) -> str:
    """A count in at most 6 characters: 9,999 / 123.4k / 12.3M."""
    if n < 10_000:
        return f"{n:,.0f}"
    if n < 1_000_000:
        return f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.1f}M"


@dataclass
class ProgressLine:
    """Prints events/s sent and scored, anomalies, dead letters and lag; redraws in place on a terminal."""

    metrics: ServiceMetrics
    total: int | None = None  # events the fleet will send, for the ETA
    out: TextIO = field(default_factory=lambda: sys.stdout)
    interval: float = 1.0
    pipe_interval: float = PIPE_INTERVAL_S
    _started: float = field(default_factory=time.monotonic)
    _last: tuple[float, int, int] | None = None
    _last_written: float | None = None  # when a pipe last got a line
    _bar: Any = None  # the tqdm bar on a terminal, made at the first frame

    def _counts(self, anomalies_read: int) -> tuple[int, str]:
        """Events scored so far, and the rest of the line: flags (read back), dead letters, lag."""
        scored = int(self.metrics.value("rnnwatch_events_scored_total"))
        dead = sum(
            sample.value
            for family in self.metrics.events_dead_lettered.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        )
        rest = (
            f"flags {_short(self.metrics.value('rnnwatch_anomalies_total'))} ({_short(anomalies_read)} read back) | "
            f"dlq {_short(dead)} | lag {_short(total_lag(self.metrics))}"
        )
        return scored, rest

    def _draw_bar(self, tqdm: Any, sent: int, anomalies_read: int) -> None:
        width = shutil.get_terminal_size((80, 24)).columns - 1
        scored, rest = self._counts(anomalies_read)
        if self._bar is None:
            self._bar = tqdm(total=self.total, desc="scored", unit=" events", unit_scale=True, file=self.out,
                             ncols=width, leave=True, mininterval=0.0, bar_format=_BAR)  # fmt: skip
        self._bar.ncols = width  # the window may have been resized
        self._bar.n = scored
        self._bar.set_postfix_str(f"{rest} | sent {_short(sent)}", refresh=False)  # tqdm puts ", " before it
        self._bar.refresh()

    def _line(self, sent: int, anomalies_read: int) -> str:
        now = time.monotonic()
        scored, rest = self._counts(anomalies_read)
        last_time, last_sent, last_scored = self._last or (self._started, 0, 0)
        span = max(now - last_time, 1e-9)
        self._last = (now, sent, scored)
        rate = (scored - last_scored) / span
        eta = f" ETA {max(self.total - scored, 0) / rate:.0f}s" if self.total and rate > 0 else ""
        of_total = f"/{_short(self.total)}" if self.total else ""
        return f"[{now - self._started:4.0f}s] scored {_short(rate)}/s{eta} | sent {_short(sent)}{of_total} | {rest}"

    def show(self, sent: int, anomalies_read: int) -> None:
        """Draw the current line (in place on a TTY; otherwise as a new line, at most every ``pipe_interval``)."""
        tqdm = tqdm_class() if self.out.isatty() else None
        if tqdm is not None:
            self._draw_bar(tqdm, sent, anomalies_read)
            return
        if self.out.isatty():
            line = self._line(sent, anomalies_read)
            width = shutil.get_terminal_size((80, 24)).columns - 1
            self.out.write("\r" + line[:width] + "\x1b[K")  # cut to the window, clear what a longer line left
        else:
            now = time.monotonic()
            if self._last_written is not None and now - self._last_written < self.pipe_interval:
                return
            self._last_written = now
            self.out.write(self._line(sent, anomalies_read) + "\n")
        self.out.flush()

    def finish(self) -> None:
        """End the in-place line so later output starts on a fresh one."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.out.isatty():
            self.out.write("\n")
            self.out.flush()
