"""broker.sh fails with one clear line when a prerequisite is missing, instead of a stack trace."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "broker.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)


def _path_with(tmp_path: Path, tools: list[str]) -> str:
    """A PATH holding only links to the named tools (and the basics bash scripts need)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in [*tools, "python3", "sha256sum", "cut", "cat", "mkdir", "rm", "mv", "grep", "sed", "dirname"]:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("broker.sh: error:")]


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": _path_with(tmp_path, []), "RNNWATCH_KAFKA_JARS": str(tmp_path / "jars")}
    result = _run(["fetch"], env)
    assert result.returncode == 1
    assert _error_lines(result.stderr) == [
        "broker.sh: error: Java is not installed (need Java 17+ on PATH to run the Kafka broker)"
    ]
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr


def test_missing_maven_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": _path_with(tmp_path, ["java"]), "RNNWATCH_KAFKA_JARS": str(tmp_path / "jars")}
    result = _run(["fetch"], env)
    assert result.returncode == 1
    assert _error_lines(result.stderr) == [
        "broker.sh: error: Maven is not installed (need 'mvn' on PATH to resolve the Kafka jars)"
    ]


@pytest.mark.timeout(300)
def test_unreachable_maven_central_is_one_clear_line(tmp_path: Path) -> None:
    # Point Maven's view of Central at a closed loopback port, with an empty local repository.
    settings = tmp_path / "settings.xml"
    settings.write_text(
        "<settings><mirrors><mirror><id>closed</id><mirrorOf>*</mirrorOf>"
        "<url>http://127.0.0.1:9/maven2</url></mirror></mirrors></settings>"
    )
    env = {
        **os.environ,
        "RNNWATCH_KAFKA_JARS": str(tmp_path / "jars"),
        "RNNWATCH_MVN_ARGS": f"-s {settings} -Dmaven.repo.local={tmp_path / 'm2'}",
    }
    result = _run(["fetch"], env)
    assert result.returncode == 1
    errors = _error_lines(result.stderr)
    assert len(errors) == 1
    assert errors[0].startswith("broker.sh: error: Maven Central cannot be reached")
    assert not (tmp_path / "jars").exists()
