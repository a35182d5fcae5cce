"""Kubernetes manifests: schema-valid offline, probes on /healthz and /readyz, and consistent with each other."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stream.service.config import ServiceConfig, load_config

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.32.0"


def _documents() -> dict[str, dict[str, Any]]:
    """Every manifest in deploy/k8s by kind (one document each)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


def _container() -> dict[str, Any]:
    (container,) = _documents()["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("kind", ["ConfigMap", "StatefulSet", "Service", "PodDisruptionBudget"])
def test_manifest_matches_the_kubernetes_schema(kind: str) -> None:
    kubernetes_validate.validate(_documents()[kind], KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_misspelled_field() -> None:
    broken = copy.deepcopy(_documents()["StatefulSet"])
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}


def test_probes_hit_healthz_and_readyz_on_the_metrics_port() -> None:
    container = _container()
    (port,) = container["ports"]
    assert port["containerPort"] == ServiceConfig().metrics_port
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")]:
        assert container[probe]["httpGet"] == {"path": path, "port": port["name"]}, probe


def test_container_has_resources_and_runs_locked_down() -> None:
    container = _container()
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    pod = _documents()["StatefulSet"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/rnnwatch/numba-cache"} <= mounts  # writable places on a read-only root


def test_configmap_is_a_valid_service_config_and_matches_the_probe_port() -> None:
    data = _documents()["ConfigMap"]["data"]
    config = load_config(env=data)
    assert config.metrics_port == _container()["ports"][0]["containerPort"]
    assert _container()["envFrom"] == [{"configMapRef": {"name": _documents()["ConfigMap"]["metadata"]["name"]}}]


def test_service_selects_the_pods_and_exposes_the_metrics_port() -> None:
    service = _documents()["Service"]
    pod_labels = _documents()["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == _container()["ports"][0]["name"]


def test_service_monitor_scrapes_the_service_as_job_rnnwatch() -> None:
    monitor, service = _documents()["ServiceMonitor"], _documents()["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "rnnwatch"  # the rules select job="rnnwatch"


def test_statefulset_gives_each_replica_a_stable_instance_id() -> None:
    """The pod's stable name (rnnwatch-0, -1, ...) is the instance id; serviceName is the headless Service."""
    statefulset, service = _documents()["StatefulSet"], _documents()["Service"]
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    (instance,) = [e for e in _container()["env"] if e["name"] == "RNNWATCH_INSTANCE_ID"]
    assert instance["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
