"""Liveness and readiness of the service, shared between the consumer loop and the HTTP endpoints.

Live: the process's event loop is making progress (the loop reports a heartbeat at least every
``stale_after_seconds``). Ready: started, joined the group, every assigned partition's state restored, and the
broker reachable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class HealthReport:
    """One answer for /healthz or /readyz: ok or not, and a one-line reason for an operator."""

    ok: bool
    reason: str


class HealthState:
    """Thread-safe flags written by the service and read by the metrics HTTP server's threads."""

    def __init__(self, stale_after_seconds: float = 60.0) -> None:
        self.stale_after_seconds = stale_after_seconds
        self._lock = threading.Lock()
        self._ready = False
        self._not_ready_reason = "starting"
        self._failed: str | None = None
        self._broker_down: str | None = None
        self._heartbeat = time.monotonic()

    def heartbeat(self) -> None:
        """Called by the consumer loop on every iteration."""
        with self._lock:
            self._heartbeat = time.monotonic()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Mark the service ready (processing) or not (starting, restoring, rebalancing, stopping)."""
        with self._lock:
            self._ready = ready
            self._not_ready_reason = reason or ("ready" if ready else "not ready")

    def set_broker_down(self, reason: str | None) -> None:
        """The broker connection is lost (``reason``) or back (None); not ready while it is lost."""
        with self._lock:
            self._broker_down = reason

    def set_failed(self, reason: str) -> None:
        """The service hit a fatal error; liveness fails from now on."""
        with self._lock:
            self._failed = reason
            self._ready = False
            self._not_ready_reason = f"failed: {reason}"

    def liveness(self) -> HealthReport:
        """Alive unless failed or the loop has not reported for ``stale_after_seconds``."""
        with self._lock:
            if self._failed is not None:
                return HealthReport(False, f"failed: {self._failed}")
            age = time.monotonic() - self._heartbeat
            if age > self.stale_after_seconds:
                return HealthReport(False, f"consumer loop silent for {age:.0f} s")
            return HealthReport(True, "alive")

    def readiness(self) -> HealthReport:
        """Ready when alive and processing its assigned partitions."""
        live = self.liveness()
        if not live.ok:
            return live
        with self._lock:
            if self._broker_down is not None:
                return HealthReport(False, self._broker_down)
            return HealthReport(self._ready, "ready" if self._ready else self._not_ready_reason)
