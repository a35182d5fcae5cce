"""Metrics registry isolation, naming rules, and the /metrics /healthz /readyz endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request

import numpy as np
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
    standard = {f.name for f in families if f.name.startswith(("process_", "python_"))}
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "python_info", "python_gc_collections"} <= standard
    for family in families:
        if family.name in standard:  # the client library's standard collectors, named by it
            continue
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


def test_latency_and_scores_are_histograms_of_every_event_not_of_batch_medians() -> None:
    metrics = ServiceMetrics()
    metrics.event_to_score_latency.observe_many(np.array([0.001] * 98 + [20.0, 20.0]))
    metrics.event_to_score_latency.observe_many(np.array([np.nan, 0.001]))  # NaN carries nothing: skipped
    metrics.scores.observe_many(np.array([0.2, 0.995, 1.0], dtype=np.float32))
    bucket = "rnnwatch_event_to_score_latency_seconds_bucket"
    assert metrics.value("rnnwatch_event_to_score_latency_seconds_count") == 101
    assert metrics.value(bucket, {"le": "0.001"}) == 99  # le: a value on the bound counts in it
    assert metrics.value(bucket, {"le": "10.0"}) == 99 and metrics.value(bucket, {"le": "30.0"}) == 101
    assert metrics.value("rnnwatch_score_bucket", {"le": "0.99"}) == 1
    assert metrics.value("rnnwatch_score_bucket", {"le": "+Inf"}) == 3
    text = metrics.exposition().decode()
    assert "rnnwatch_build_info{" in text and 'numba="' in text


def test_scrape_text_is_valid_for_promtool() -> None:
    import shutil
    import subprocess

    metrics = ServiceMetrics()
    metrics.scores.observe_many(np.array([0.5]))
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is installed by deploy/dev/setup.sh"
    checked = subprocess.run([promtool, "check", "metrics"], input=metrics.exposition(), capture_output=True)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_the_models_stated_false_alarm_rates_are_exported_and_cleared_for_a_model_without_them() -> None:
    from rnncore.calibration_prior import PRIOR_FIELD, CalibrationPrior

    prior = CalibrationPrior(
        mean_surprise=1.0, var_surprise=0.5, mean_short=1.0, var_short=0.1, events=500, streams=2,
        false_alarm_trained=0.004, false_alarm_new=0.0125,
    )  # fmt: skip
    metrics = ServiceMetrics()
    metrics.show_stated_false_alarm({PRIOR_FIELD: prior.to_dict()})
    name = "rnnwatch_model_stated_false_alarm"
    assert metrics.value(name, {"streams": "trained", "threshold": "0.99"}) == 0.004
    assert metrics.value(name, {"streams": "new", "threshold": "0.99"}) == 0.0125
    metrics.show_stated_false_alarm({})  # a model from before the prior: no stated rate, not a stale one
    assert f"{name}{{" not in metrics.exposition().decode()
