"""The container image recipe and the compose stack: lint-clean, non-root, and wired to the real config."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.service.config import ServiceConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "deploy" / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
COMPOSE = DOCKER_DIR / "compose.yaml"


def venv_tool(name: str) -> str:
    """A console script installed beside the running Python (the project venv), else on PATH; fail if absent."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: pip install it into the venv (it is a dev dependency)")
    return found


def _stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return compose


def test_hadolint_passes() -> None:
    result = subprocess.run([venv_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_with_a_builder_that_installs_the_wheel() -> None:
    builder, runtime = _stages()
    assert builder[0][1].endswith("AS builder")
    build_steps = " ".join(arguments for instruction, arguments in builder if instruction == "RUN")
    assert "pip wheel" in build_steps and "pip install -c constraints.txt" in build_steps
    assert 'wheel="$(echo /wheels/rnnwatch-*.whl)"' in build_steps  # the wheel just built, with RNNWATCH_EXTRAS
    assert ("COPY", "--from=builder /opt/rnnwatch /opt/rnnwatch") in runtime


def test_copied_sources_exist_and_pass_the_dockerignore() -> None:
    ignore = (DOCKER_DIR / "Dockerfile.dockerignore").read_text()
    builder = _stages()[0]
    for instruction, arguments in builder:
        if instruction == "COPY":
            *sources, _ = arguments.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert f"!{source.removeprefix('./')}" in ignore, f"COPY {source}: excluded by Dockerfile.dockerignore"


def test_runtime_runs_as_non_root_and_checks_health_on_the_metrics_port() -> None:
    runtime = dict(_stages()[-1])  # last value of each instruction wins, as in Docker
    user = runtime["USER"].split(":")[0]
    assert user not in {"root", "0"}
    assert runtime["EXPOSE"].split() == [str(ServiceConfig().metrics_port)]
    assert "/healthz" in runtime["HEALTHCHECK"] and runtime["HEALTHCHECK"].startswith("--interval")
    assert runtime["ENTRYPOINT"] == '["rnnwatch"]' and runtime["CMD"] == '["serve"]'


def test_compose_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_builds_rnnwatch_from_the_dockerfile() -> None:
    build = _compose()["services"]["rnnwatch"]["build"]
    context = (DOCKER_DIR / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_has_kafka_kraft_prometheus_and_grafana() -> None:
    services = _compose()["services"]
    assert {"kafka", "rnnwatch", "prometheus", "grafana"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["rnnwatch"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_mounts_files_that_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER_DIR / source).exists(), f"{name}: mounts missing {source}"


def test_compose_environment_is_a_valid_service_config() -> None:
    environment = {k: str(v) for k, v in _compose()["services"]["rnnwatch"]["environment"].items()}
    config = load_config(env=environment)
    assert config.bootstrap_servers == "kafka:9092"
    assert config.input_topic == "rnnwatch-events"


def test_prometheus_scrapes_the_compose_service_on_its_metrics_port() -> None:
    compose = _compose()["services"]["rnnwatch"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "rnnwatch"]
    assert job["static_configs"][0]["targets"] == [f"rnnwatch:{compose['environment']['RNNWATCH_METRICS_PORT']}"]


def _mount(volume: str) -> tuple[str, str, str]:
    """(source, target, mode) of a compose short-syntax volume whose source may be ``${VAR:-default}``."""
    match = re.fullmatch(r"(\$\{[^}]*\}|[^:]+):([^:]+)(?::(\w+))?", volume)
    assert match, volume
    return match[1], match[2], match[3] or ""


def test_compose_trains_the_model_it_serves_before_serving() -> None:
    """The train service's command is a real `rnnwatch train` invocation (parsed by the CLI's own parser), writes
    where serve reads, in an image with the train extra, and serve waits for it to finish."""
    from stream.cli import build_parser

    services = _compose()["services"]
    train, serve = services["train"], services["rnnwatch"]
    args = build_parser().parse_args(train["command"])
    assert args.command == "train" and args.skip_if_trained and args.synthetic
    served = load_config(env={k: str(v) for k, v in serve["environment"].items()}).model_dir
    assert str(args.out) == served
    (serve_mount,) = [m for m in map(_mount, serve["volumes"]) if m[1] == served]
    (train_mount,) = [m for m in map(_mount, train["volumes"]) if m[1] == served]
    assert serve_mount[0] == train_mount[0] == "${RNNWATCH_MODEL_DIR:-models}"
    assert serve_mount[2] == "ro" and train_mount[2] == ""
    assert train["build"]["args"]["RNNWATCH_EXTRAS"] == "train" and "RNNWATCH_EXTRAS" in DOCKERFILE.read_text()
    assert train["build"]["dockerfile"] == serve["build"]["dockerfile"]
    assert serve["depends_on"]["train"]["condition"] == "service_completed_successfully"
    assert "models" in _compose()["volumes"]  # the default: a named volume, writable by the image's user
