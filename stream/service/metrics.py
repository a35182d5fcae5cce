"""Every Prometheus metric of the service, in one per-service registry, plus the /metrics /healthz /readyz server.

Names use base units and the ``_total`` / ``_seconds`` / ``_bytes`` suffixes; labels are bounded (reason,
partition, kind), never a stream key. A registry per ``ServiceMetrics`` lets tests run several services.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector

from stream.service.bulk_histogram import BulkHistogram
from stream.service.health import HealthState

logger = logging.getLogger(__name__)

PREFIX = "rnnwatch"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)
_DURATION_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
# dense near the flag: the share of scores past 0.99 is what a default threshold's false-alarm rate means
_SCORE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def build_versions() -> dict[str, str]:
    """rnnwatch and the versions of what the numbers depend on, for ``rnnwatch_build_info``."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for distribution in ("rnnwatch", "numba", "numpy", "aiokafka"):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = "unknown"
    return {"version": versions.pop("rnnwatch"), **versions}


class ServiceMetrics:
    """The service's metrics; attribute names match the metric names without the ``rnnwatch_`` prefix."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        counter, gauge, histogram, bulk = self._counter, self._gauge, self._histogram, self._bulk_histogram
        self.events_consumed = counter("events_consumed", "Input messages read from Kafka")
        self.events_scored = counter("events_scored", "Events scored by the detector")
        self.events_dead_lettered = counter(
            "events_dead_lettered", "Input messages sent to the dead-letter topic", ["reason"]
        )
        self.anomalies = counter("anomalies", "Scored events at or above the anomaly threshold")
        self.batch_size = histogram("batch_size_events", "Events per partition micro-batch", _BATCH_BUCKETS)
        self.processing_latency = histogram(
            "batch_processing_seconds",
            "Wall time from a micro-batch's arrival to its outputs being committed",
            _LATENCY_BUCKETS,
        )
        self.event_to_score_latency = bulk(
            "event_to_score_latency_seconds",
            "Wall-clock time minus event time when scored, per event",
            _LATENCY_BUCKETS,
        )
        self.ingest_to_score_latency = bulk(
            "ingest_to_score_latency_seconds",
            "Wall-clock time minus the Kafka record timestamp when processed, per message: the service's own delay, "
            "which replayed history and sensor clocks do not move",
            _LATENCY_BUCKETS,
        )
        self.scores = bulk("score", "Anomaly scores of scored events (watch calibration drift)", _SCORE_BUCKETS)
        self.consumer_lag = gauge(
            "consumer_lag_messages", "High watermark minus position, per input partition", ["partition"]
        )
        self.active_streams = gauge("active_streams", "Streams holding a state row")
        self.state_bytes = gauge("state_bytes", "Estimated bytes of per-stream state")
        self.assigned_partitions = gauge("assigned_partitions", "Input partitions owned")
        self.model_info = Info(f"{PREFIX}_model", "The model in use (version, cell, sizes)", registry=self.registry)
        self.false_alarm_target = gauge(
            "false_alarm_target",
            "Share of a stream's held-out normal events whose envelope score reached `threshold` (the envelope's "
            "default, rnnwatch score's and serve's default anomaly_threshold): what that threshold means",
            ["threshold"],
        )
        self.stated_false_alarm = gauge(
            "model_stated_false_alarm",
            "Per-event false-alarm rate at `threshold` (the default anomaly_threshold) that rnnwatch train measured "
            "for the model in use on its held-out normal events (the artifact's calibration_prior): on its training "
            "streams (streams=trained) and on the same events replayed as new streams (streams=new); absent for a "
            "model without a calibration prior",
            ["streams", "threshold"],
        )
        self.rebalances = counter("rebalances", "Partition assignment changes", ["kind"])
        self.checkpoint_duration = histogram(
            "checkpoint_seconds", "Time to write a full state snapshot to the changelog", _DURATION_BUCKETS
        )
        self.restore_duration = histogram(
            "restore_seconds", "Time to restore one partition's state from the changelog", _DURATION_BUCKETS
        )
        self.changelog_skipped = counter(
            "changelog_records_skipped", "Changelog records restore skipped: not rnnwatch state records"
        )
        self.checkpoint_failures = counter(
            "checkpoint_failures", "Batches whose state changelog records could not be written"
        )
        self.model_reloads = counter(
            "model_reloads",
            "Model artifacts taken (result=loaded), refused (refused), or loaded again at start (start_retried)",
            ["result"],
        )
        self.events_archived = counter("events_archived", "Scored events appended to the event archive")
        self.archive_failures = counter(
            "archive_failures", "Batches the event archive could not write (scoring went on)"
        )
        self.changelog_bytes = counter("changelog_written_bytes", "Bytes of state records written to the changelog")
        self.build_info = Info(f"{PREFIX}_build", "rnnwatch and dependency versions", registry=self.registry)
        self.build_info.info(build_versions())
        # the standard process_* / python_* series the default registry would carry
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def _counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter ``rnnwatch_<name>_total`` in this registry."""
        return Counter(f"{PREFIX}_{name}", documentation, labels, registry=self.registry)

    def _gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge ``rnnwatch_<name>`` in this registry."""
        return Gauge(f"{PREFIX}_{name}", documentation, labels, registry=self.registry)

    def _histogram(self, name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
        """A histogram ``rnnwatch_<name>`` with ``buckets`` in this registry, observed one value at a time."""
        return Histogram(f"{PREFIX}_{name}", documentation, buckets=buckets, registry=self.registry)

    def _bulk_histogram(self, name: str, documentation: str, buckets: Sequence[float]) -> BulkHistogram:
        """A histogram ``rnnwatch_<name>`` with ``buckets`` in this registry, observed an array at a time."""
        return BulkHistogram(f"{PREFIX}_{name}", documentation, buckets, self.registry)

    def show_stated_false_alarm(self, metadata: Mapping[str, Any]) -> None:
        """Export the stated false-alarm rates of the model whose ``metadata`` (its ``model.json``) is now in use;
        a model without a calibration prior clears them."""
        from rnncore.calibration_prior import prior_of

        self.stated_false_alarm.clear()
        prior = prior_of(metadata)
        if prior is None:
            return
        threshold = f"{prior.threshold:g}"
        for streams, rate in (("trained", prior.false_alarm_trained), ("new", prior.false_alarm_new)):
            if rate is not None:
                self.stated_false_alarm.labels(streams=streams, threshold=threshold).set(rate)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value by full name (e.g. ``rnnwatch_events_scored_total``), 0.0 when absent."""
        found = self.registry.get_sample_value(name, labels or {})
        return 0.0 if found is None else float(found)


def _handler(metrics: ServiceMetrics, health: HealthState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                report = health.liveness() if path == "/healthz" else health.readiness()
                self._reply(200 if report.ok else 503, (report.reason + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
            logger.debug("http %s", format % args)

    return Handler


class MetricsServer:
    """HTTP server in a daemon thread: /metrics, /healthz (liveness) and /readyz (readiness); port 0 = any free."""

    def __init__(self, metrics: ServiceMetrics, health: HealthState, host: str = "0.0.0.0", port: int = 9108) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(metrics, health))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="rnnwatch-metrics", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        """Start serving; returns self."""
        self._thread.start()
        logger.info("metrics and health on port %d", self.port)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
