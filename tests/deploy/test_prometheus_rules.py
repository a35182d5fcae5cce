"""The alert and recording rules: promtool accepts them, their unit tests pass, and they read real metric names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_prometheus_names import exported_metric_names, metric_names_in, recording_names_in

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules" / "rnnwatch.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "rules" / "rnnwatch.rules.test.yml"
REQUIRED_ALERTS = {
    "RnnwatchDown",
    "RnnwatchConsumerLagGrowing",
    "RnnwatchAnomalyRateSpike",
    "RnnwatchDeadLetterRate",
    "RnnwatchCheckpointStalled",
}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool (Debian package `prometheus`, installed by deploy/dev/setup.sh)."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: install the Debian package 'prometheus' (deploy/dev/setup.sh does)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_fail_when_a_rule_changes(tmp_path: Path) -> None:
    """The unit tests can fail: make RnnwatchDown wait 20 minutes and they must notice."""
    down_rule = 'expr: up{job="rnnwatch"} == 0\n        for: 2m'
    changed = RULES.read_text().replace(down_rule, down_rule.replace("2m", "20m"))
    assert changed != RULES.read_text()
    (tmp_path / RULES.name).write_text(changed)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "RnnwatchDown" in result.stdout + result.stderr


def test_required_alerts_exist() -> None:
    assert set(_alerts()) >= REQUIRED_ALERTS


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS | {"RnnwatchAbsent", "RnnwatchScoreLatencyHigh"}))
def test_alert_has_severity_duration_and_operator_text(name: str) -> None:
    rule = _alerts()[name]
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["for"], "alerts wait before firing so one bad scrape does not page"
    assert {"summary", "description", "runbook"} <= set(rule["annotations"])


def test_every_alert_has_a_firing_and_a_non_firing_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert set(_alerts()) <= firing
    assert set(_alerts()) <= quiet


def test_rules_read_only_exported_metrics_and_defined_recordings() -> None:
    exported = exported_metric_names()
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    for rule in _rules():
        expr = rule["expr"]
        assert metric_names_in(expr) <= exported, f"{rule.get('alert') or rule.get('record')}: unknown metric"
        assert recording_names_in(expr) <= recorded, f"{rule.get('alert') or rule.get('record')}: unknown recording"
