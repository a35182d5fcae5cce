"""Every YAML file of the operator artifacts parses and is not empty (the first thing a typo breaks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
YAML_FILES = sorted(
    path
    for folder in ("prometheus", "grafana", "docker", "k8s")
    for pattern in ("*.yml", "*.yaml")
    for path in (DEPLOY / folder).rglob(pattern)
)


def test_the_artifacts_are_found() -> None:
    names = {path.name for path in YAML_FILES}
    assert {"prometheus.yml", "rnnwatch.rules.yml", "compose.yaml", "statefulset.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses_to_mappings(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text()))
    assert documents and all(isinstance(document, dict) and document for document in documents)
