"""Archive of consumed events as rolling JSON Lines files that `rnnwatch train --logs DIR` reads back.

The service appends each batch's scored events after the batch is committed, so the archive holds what the
service has committed: a crash can lose the events of the batch in flight and of the open (``.part``) file,
but never duplicates them within one run. Values are the float32 the detector saw.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stream.data.eventlog import EventRecord, RollingEventLogWriter
from stream.service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)


class EventArchive:
    """Writes scored events to rolling files; a write failure is counted and logged, never fatal."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int,
        max_age_seconds: float,
        metrics: ServiceMetrics,
        prefix: str = "events",
    ) -> None:
        self.metrics = metrics
        self._writer = RollingEventLogWriter(directory, prefix=prefix, max_bytes=max_bytes, max_seconds=max_age_seconds)

    def write(self, keys: Sequence[str], times: np.ndarray, values: np.ndarray) -> None:
        """Append one batch's events (``values`` is [n, F])."""
        try:
            rows = values.reshape(len(keys), -1).tolist()
            self._writer.write(EventRecord(k, t, tuple(v)) for k, t, v in zip(keys, times.tolist(), rows, strict=True))
        except OSError as error:
            self.metrics.archive_failures.inc()
            logger.error("event archive write failed (%s); scoring goes on without archiving this batch", error)
            return
        self.metrics.events_archived.inc(len(keys))

    def close(self) -> None:
        """Publish the open file under its final name."""
        try:
            self._writer.close()
        except OSError as error:
            logger.error("event archive close failed: %s", error)
