"""The Grafana dashboard and provisioning: they parse, every panel queries PromQL, and every metric exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_prometheus_names import exported_metric_names, metric_names_in, recording_names_in

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "rnnwatch.json"
# Grafana's variables, replaced by what Grafana would send so the expressions are plain PromQL.
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$instance": ".*"}


def load_dashboard() -> dict[str, Any]:
    """The dashboard JSON as a dict."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard (panel targets and query variables), variables substituted."""
    dashboard = load_dashboard()
    exprs = [target["expr"] for panel in _query_panels(dashboard) for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
            assert found, f"variable {variable['name']}: expected label_values(<selector>, <label>)"
            exprs.append(found.group(1))
    for name, value in _GRAFANA_VARIABLES.items():
        exprs = [expr.replace(name, value) for expr in exprs]
    return exprs


def test_dashboard_has_identity_and_unique_panel_ids() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "rnnwatch"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_has_promql_targets_on_the_datasource_variable() -> None:
    panels = _query_panels(load_dashboard())
    assert len(panels) >= 8
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel {panel['title']!r} has an empty query"
            assert target["datasource"]["uid"] == "${datasource}"


def test_panels_fit_the_grid() -> None:
    for panel in load_dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0, panel["title"]


@pytest.mark.parametrize(
    "topic",
    [
        "throughput",
        "latency p50 / p99",
        "lag",
        "anomal",
        "dead letters by reason",
        "model version",
        "state size",
        "streams",
    ],
)
def test_dashboard_covers(topic: str) -> None:
    titles = [panel["title"].lower() for panel in _query_panels(load_dashboard())]
    assert any(topic in title for title in titles), f"no panel about {topic!r} in {titles}"


def test_latency_panel_shows_p50_and_p99_of_histograms() -> None:
    exprs = " ".join(dashboard_queries())
    assert "histogram_quantile(0.5, sum by (le) (rate(rnnwatch_event_to_score_latency_seconds_bucket" in exprs
    assert "histogram_quantile(0.99, sum by (le) (rate(rnnwatch_event_to_score_latency_seconds_bucket" in exprs


def test_dead_letters_are_split_by_reason() -> None:
    assert any("sum by (reason)" in e and "rnnwatch_events_dead_lettered_total" in e for e in dashboard_queries())


def test_every_metric_in_a_query_is_exported_by_the_service() -> None:
    exported = exported_metric_names()
    used = set().union(*(metric_names_in(expr) for expr in dashboard_queries()))
    assert used, "no rnnwatch metric found in the dashboard queries"
    assert used <= exported, f"not exported by stream.service.metrics: {sorted(used - exported)}"
    recordings = set().union(*(recording_names_in(expr) for expr in dashboard_queries()))
    assert not recordings, "the dashboard must work without the recording rules"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each expression (wrapped as a recording rule), so a typo fails here, not in Grafana."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install the Debian package 'prometheus' (deploy/dev/setup.sh does)")
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(dashboard_queries())]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_datasource_provisioning_matches_the_compose_prometheus() -> None:
    config = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provisioning_points_where_compose_mounts_the_dashboards() -> None:
    config = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "rnnwatch.yaml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    compose = (GRAFANA_DIR.parent / "docker" / "compose.yaml").read_text()
    assert f"../grafana/dashboards:{provider['options']['path']}" in compose
