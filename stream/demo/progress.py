"""Live progress of the demo in the terminal: one refreshing line of rates, anomalies and consumer lag."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from stream.service.metrics import ServiceMetrics


def total_lag(metrics: ServiceMetrics) -> int:
    """Sum of the per-partition consumer lag gauge."""
    lag = 0.0
    for family in metrics.consumer_lag.collect():
        lag += sum(sample.value for sample in family.samples)
    return int(lag)


@dataclass
class ProgressLine:
    """Prints events/s sent and scored, anomalies, dead letters and lag; redraws in place on a terminal."""

    metrics: ServiceMetrics
    out: TextIO = field(default_factory=lambda: sys.stdout)
    interval: float = 1.0
    _started: float = field(default_factory=time.monotonic)
    _last: tuple[float, int, int] | None = None

    def _line(self, sent: int, anomalies_read: int) -> str:
        now = time.monotonic()
        scored = int(self.metrics.value("rnnwatch_events_scored_total"))
        last_time, last_sent, last_scored = self._last or (self._started, 0, 0)
        span = max(now - last_time, 1e-9)
        self._last = (now, sent, scored)
        dead = sum(
            sample.value
            for family in self.metrics.events_dead_lettered.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        )
        return (
            f"[{now - self._started:6.1f} s] sent {sent:>8,} ({(sent - last_sent) / span:>7,.0f}/s)  "
            f"scored {scored:>8,} ({(scored - last_scored) / span:>7,.0f}/s)  "
            f"anomalies {int(self.metrics.value('rnnwatch_anomalies_total')):>5,} (read back {anomalies_read:,})  "
            f"dead letters {int(dead)}  lag {total_lag(self.metrics):>6,}"
        )

    def show(self, sent: int, anomalies_read: int) -> None:
        """Draw the current line (in place on a TTY, as a new line otherwise)."""
        line = self._line(sent, anomalies_read)
        if self.out.isatty():
            self.out.write("\r" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self) -> None:
        """End the in-place line so later output starts on a fresh one."""
        if self.out.isatty():
            self.out.write("\n")
            self.out.flush()
