"""One INFO line every ``status_log_seconds`` while the service runs, so its log says it is alive and how it does.

Prometheus is where these numbers are watched; the line is for whoever reads ``journalctl`` or ``kubectl logs``
without a dashboard: rates over the last interval, totals, lag, streams and partitions.
"""

from __future__ import annotations

import logging
import time

from stream.service.metrics import ServiceMetrics

logger = logging.getLogger("stream.service.status")


def _sum(metrics: ServiceMetrics, family_name: str, suffix: str = "") -> float:
    """Sum of every sample of a labelled family (e.g. dead letters over all reasons, lag over partitions)."""
    total = 0.0
    for family in metrics.registry.collect():
        if family.name == family_name:
            total += sum(s.value for s in family.samples if s.name.endswith(suffix))
    return total


class StatusLog:
    """Logs the service's state at most once per ``interval_s`` (0 switches it off)."""

    def __init__(self, metrics: ServiceMetrics, interval_s: float) -> None:
        self.metrics, self.interval_s = metrics, interval_s
        self._last_time = time.monotonic()
        self._last_scored = metrics.value("rnnwatch_events_scored_total")

    def line(self, now: float) -> str:
        """The status line for the interval ending at ``now`` (monotonic seconds); starts the next interval."""
        m = self.metrics
        scored = m.value("rnnwatch_events_scored_total")
        rate = (scored - self._last_scored) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_scored = now, scored
        return (
            f"status: {rate:,.0f} events/s scored over the last {self.interval_s:g} s; totals: "
            f"{scored:,.0f} scored, {m.value('rnnwatch_anomalies_total'):,.0f} anomalies, "
            f"{_sum(m, 'rnnwatch_events_dead_lettered', '_total'):,.0f} dead letters; "
            f"lag {_sum(m, 'rnnwatch_consumer_lag_messages'):,.0f} messages; "
            f"{m.value('rnnwatch_active_streams'):,.0f} streams on "
            f"{m.value('rnnwatch_assigned_partitions'):,.0f} partitions"
        )

    def maybe_log(self, now: float | None = None) -> bool:
        """Log the line when an interval has passed; returns whether it did."""
        now = time.monotonic() if now is None else now
        if self.interval_s <= 0 or now - self._last_time < self.interval_s:
            return False
        logger.info("%s", self.line(now))
        return True
