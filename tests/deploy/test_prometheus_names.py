"""Which metric names the service exports, taken from `stream.service.metrics`' registry, and which ones PromQL uses.

Other deploy tests import `exported_metric_names` and `metric_names_in` from here so dashboards and rules
are checked against the real registry, never a hand-written list.
"""

from __future__ import annotations

import re

from stream.service.metrics import ServiceMetrics

# The sample names each metric family type exposes (prometheus_client strips `_total` from counter families).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
# A metric name not preceded by `:` or a word character and not followed by `:` (those are recording rules).
_METRIC_IN_PROMQL = re.compile(r"(?<![\w:])(rnnwatch_[A-Za-z0-9_]+)\b(?!:)")
_RECORDING_IN_PROMQL = re.compile(r"(?<![\w:])([A-Za-z_][\w]*:[\w:]+)")
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")


def exported_metric_names() -> set[str]:
    """Every sample name a fresh `ServiceMetrics` registry can expose (labelled families included)."""
    names: set[str] = set()
    for family in ServiceMetrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def metric_names_in(promql: str) -> set[str]:
    """The `rnnwatch_*` metric names an expression reads (recording-rule names such as `job:x:rate5m` excluded)."""
    return set(_METRIC_IN_PROMQL.findall(_STRING_LITERAL.sub('""', promql)))


def recording_names_in(promql: str) -> set[str]:
    """The recording-rule names (containing `:`) an expression reads."""
    return set(_RECORDING_IN_PROMQL.findall(_STRING_LITERAL.sub('""', promql)))


def test_exported_names_include_each_kind_of_family() -> None:
    names = exported_metric_names()
    assert "rnnwatch_events_scored_total" in names
    assert "rnnwatch_events_dead_lettered_total" in names  # labelled, no sample until a reason is used
    assert {"rnnwatch_batch_processing_seconds_bucket", "rnnwatch_batch_processing_seconds_count"} <= names
    assert "rnnwatch_consumer_lag_messages" in names
    assert "rnnwatch_model_info" in names
    assert "rnnwatch_events_scored" not in names


def test_metric_names_in_skips_recording_rules_and_label_values() -> None:
    expr = (
        'sum by (job) (rate(rnnwatch_anomalies_total{job="rnnwatch_x"}[5m])) '
        "/ job:rnnwatch_events_scored:rate5m{note='job:rnnwatch_y:z'}"
    )
    assert metric_names_in(expr) == {"rnnwatch_anomalies_total"}
    assert recording_names_in(expr) == {"job:rnnwatch_events_scored:rate5m"}
