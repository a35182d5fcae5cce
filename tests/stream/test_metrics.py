"""Metrics registry isolation, naming rules, and the /metrics /healthz /readyz endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from stream.service.health import HealthState
from stream.service.metrics import MetricsServer, ServiceMetrics


def test_two_services_have_independent_registries() -> None:
    a, b = ServiceMetrics(), ServiceMetrics()
    a.events_scored.inc(3)
    a.events_dead_lettered.labels(reason="bad_type").inc()
    assert a.value("rnnwatch_events_scored_total") == 3
    assert b.value("rnnwatch_events_scored_total") == 0
    assert a.value("rnnwatch_events_dead_lettered_total", {"reason": "bad_type"}) == 1


def test_metric_names_follow_the_conventions_and_have_no_key_label() -> None:
    metrics = ServiceMetrics()
    metrics.consumer_lag.labels(partition="0").set(5)
    metrics.rebalances.labels(kind="assigned").inc()
    metrics.events_dead_lettered.labels(reason="x").inc()
    families = list(metrics.registry.collect())
    assert len(families) >= 15
    for family in families:
        assert family.name.startswith("rnnwatch_")
        for sample in family.samples:
            assert "key" not in sample.labels and "stream" not in sample.labels
            if family.type == "counter" and sample.name.endswith("_total"):
                continue
            if family.type == "counter":
                assert sample.name.endswith("_created")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_http_endpoints_report_metrics_liveness_and_readiness() -> None:
    metrics, health = ServiceMetrics(), HealthState(stale_after_seconds=60)
    metrics.events_consumed.inc(7)
    server = MetricsServer(metrics, health, host="127.0.0.1", port=0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = _get(f"{base}/metrics")
        assert status == 200 and "rnnwatch_events_consumed_total 7.0" in body
        assert _get(f"{base}/healthz")[0] == 200
        status, body = _get(f"{base}/readyz")
        assert status == 503 and "starting" in body
        health.set_ready(True)
        assert _get(f"{base}/readyz")[0] == 200
        health.set_failed("broker unreachable")
        status, body = _get(f"{base}/healthz")
        assert status == 503 and "broker unreachable" in body
        assert _get(f"{base}/readyz")[0] == 503
        assert _get(f"{base}/nope")[0] == 404
    finally:
        server.stop()


def test_liveness_fails_when_the_loop_stops_reporting(monkeypatch: pytest.MonkeyPatch) -> None:
    health = HealthState(stale_after_seconds=10)
    import stream.service.health as module

    now = module.time.monotonic()
    monkeypatch.setattr(module.time, "monotonic", lambda: now + 11)
    report = health.liveness()
    assert not report.ok and "silent" in report.reason
