"""A real Prometheus server scrapes rnnwatch's metrics endpoint and evaluates the shipped rules against it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.service.app import Service
from stream.service.health import HealthState
from stream.service.metrics import MetricsServer, ServiceMetrics
from tests.deploy.test_grafana_dashboard import dashboard_queries
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.service_harness import config_for, event, publish, running, wait_until

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules" / "rnnwatch.rules.yml"
DEADLINE_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _fast_rules(tmp_path: Path) -> Path:
    """The shipped rules with every group evaluated each second, so the test sees results in seconds."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


class PrometheusServer:
    """A throwaway Prometheus process scraping one target every second; always stop() it."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus not found: install the Debian package 'prometheus' (deploy/dev/setup.sh does)")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(_fast_rules(tmp_path))],
            "scrape_configs": [{"job_name": "rnnwatch", "static_configs": [{"targets": [target]}]}],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.address = f"127.0.0.1:{_free_port()}"
        self._log = (tmp_path / "prometheus.log").open("w")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={self.address}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> and return its `data`."""
        url = f"http://{self.address}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=2) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def wait_for(self, what: str, check: Callable[[], Any]) -> Any:
        """Poll `check` until it returns something truthy; fail with the server's log after the deadline."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                found = check()
            except OSError:  # not listening yet
                found = None
            if found:
                return found
            time.sleep(0.25)
        self._log.flush()
        log = Path(self._log.name).read_text()[-3000:]
        pytest.fail(f"Prometheus never showed {what} (exit code {self._process.poll()}); its log:\n{log}")

    def query(self, promql: str) -> dict[str, float]:
        """Instant query -> {labels as 'k=v,...' without __name__: value}."""
        result = self.api("query", query=promql)["result"]
        return {_label_text(sample["metric"]): float(sample["value"][1]) for sample in result}

    def stop(self) -> None:
        """Terminate the process (kill after 10 s) and close its log."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def metrics_endpoint() -> Iterator[tuple[ServiceMetrics, MetricsServer]]:
    """The service's metrics server alone, on a free local port, with a few known values."""
    metrics = ServiceMetrics()
    metrics.events_consumed.inc(1000)
    metrics.events_scored.inc(990)
    metrics.events_dead_lettered.labels(reason="bad_json").inc(10)
    metrics.consumer_lag.labels(partition="0").set(7)
    metrics.consumer_lag.labels(partition="1").set(5)
    metrics.model_info.info({"version": "test-1"})
    health = HealthState()
    health.set_ready(True)
    server = MetricsServer(metrics, health, host="127.0.0.1", port=0).start()
    try:
        yield metrics, server
    finally:
        server.stop()


def _label_text(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()) if key != "__name__")


def _evaluated_rule_health(prometheus: PrometheusServer) -> dict[str, tuple[str, str]]:
    """rule name -> (health, alert state) once every rule has been evaluated at least once, else {}."""
    groups = prometheus.api("rules")["groups"]
    health = {rule["name"]: (rule["health"], rule.get("state", "")) for group in groups for rule in group["rules"]}
    return health if all(status != "unknown" for status, _ in health.values()) else {}


@pytest.mark.timeout(90)
def test_prometheus_scrapes_metrics_and_evaluates_rules(
    tmp_path: Path, metrics_endpoint: tuple[ServiceMetrics, MetricsServer]
) -> None:
    _, server = metrics_endpoint
    prometheus = PrometheusServer(tmp_path, f"127.0.0.1:{server.port}")
    try:
        prometheus.wait_for("the target up", lambda: prometheus.query('up{job="rnnwatch"} == 1'))
        assert prometheus.query('rnnwatch_model_info{version="test-1"}')
        lag = prometheus.wait_for(
            "the lag recording rule", lambda: prometheus.query("job:rnnwatch_consumer_lag_messages:sum")
        )
        assert lag == {"job=rnnwatch": 12.0}
        health = prometheus.wait_for("every rule evaluated", lambda: _evaluated_rule_health(prometheus))
        assert all(status == "ok" for status, _ in health.values()), health
        assert health["RnnwatchDown"] == ("ok", "inactive")

        server.stop()  # the service dies: RnnwatchDown goes pending (it fires only after its `for:` of 2m)
        prometheus.wait_for("the target down", lambda: prometheus.query('up{job="rnnwatch"} == 0'))
        pending = prometheus.wait_for(
            "RnnwatchDown pending", lambda: prometheus.query('ALERTS{alertname="RnnwatchDown", alertstate="pending"}')
        )
        assert list(pending.values()) == [1.0]
        assert "severity=critical" in next(iter(pending))
    finally:
        prometheus.stop()


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_prometheus_scrapes_the_running_service(
    make_service_topics: MakeServiceTopics,
    tmp_path: Path,
    kafka_bootstrap: str,
    make_group: Callable[[], str],
) -> None:
    """The real service scores events from the broker while Prometheus scrapes it and evaluates the rules."""
    topics = make_service_topics(partitions=2)
    good = [(f"sensor-{i % 5}".encode(), event(f"sensor-{i % 5}", 1000.0 + i, float(i % 7))) for i in range(200)]
    bad = [(b"broken", b"not json")] * 3
    port = _free_port()
    config = dataclasses.replace(
        config_for(kafka_bootstrap, topics, make_group()), metrics_host="127.0.0.1", metrics_port=port
    )
    weights = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=1)
    prometheus = PrometheusServer(tmp_path, f"127.0.0.1:{port}")

    async def scenario() -> None:
        await publish(kafka_bootstrap, topics["input"], good + bad)
        # The real Detector with small random weights: the model info metric and real state sizes are exported.
        service = Service(config, weights, serve_http=True)
        consumed = lambda: service.metrics.value("rnnwatch_events_consumed_total") >= len(good) + len(bad)  # noqa: E731
        async with running(service) as task:
            await wait_until(consumed, task, "every event consumed", timeout=120)
            assert await asyncio.to_thread(_http_status, f"http://127.0.0.1:{port}/readyz") == 200
            # Blocking Prometheus polls run in a thread so the service's event loop keeps going.
            await asyncio.to_thread(_check_prometheus_sees_the_service, prometheus, len(good), len(bad))

    try:
        run_sync(scenario())
    finally:
        prometheus.stop()


def _check_prometheus_sees_the_service(prometheus: PrometheusServer, scored: int, dead: int) -> None:
    prometheus.wait_for("the service's target up", lambda: prometheus.query('up{job="rnnwatch"} == 1'))
    prometheus.wait_for("every event counted", lambda: prometheus.query(f"rnnwatch_events_scored_total == {scored}"))
    dead_letters = prometheus.wait_for(
        "every dead letter counted", lambda: prometheus.query(f"rnnwatch_events_dead_lettered_total == {dead}")
    )
    assert len(dead_letters) == 1
    assert "reason=invalid_json" in next(iter(dead_letters))
    assert prometheus.query('rnnwatch_model_info{cell="gru", hidden_size="8"}')
    assert prometheus.query("rnnwatch_assigned_partitions")
    # the gauges are set after the batch's commit, the counters before it: a scrape can fall in between
    prometheus.wait_for("the active streams gauge", lambda: prometheus.query("rnnwatch_active_streams > 0"))
    recorded = prometheus.wait_for(
        "the dead-letter recording rule", lambda: prometheus.query("job_reason:rnnwatch_events_dead_lettered:rate5m")
    )
    assert list(recorded) == ["job=rnnwatch,reason=invalid_json"]
    health = prometheus.wait_for("every rule evaluated", lambda: _evaluated_rule_health(prometheus))
    assert all(status == "ok" for status, _ in health.values()), health
    assert health["RnnwatchDown"] == ("ok", "inactive")
    with_data = [expr for expr in dashboard_queries() if prometheus.query(expr)]
    assert len(with_data) >= len(dashboard_queries()) // 2, "most dashboard queries should return series"
