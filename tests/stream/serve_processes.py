"""Helpers for fault-injection tests that run `rnnwatch serve` replicas as processes and watch their /metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nothing listens on right now (for a replica's /metrics)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric(port: int, name: str) -> float:
    """Sum of every sample of ``name`` (all label sets) on the replica's /metrics; -1.0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def serve_args(
    bootstrap: str, topics: dict[str, str], group: str, instance: str, model_dir: Path, *extra: str
) -> list[str]:
    """`rnnwatch serve` flags for a replica of ``group`` on the test's topics (keys in, out, dlq, log)."""
    return [
        "--bootstrap-servers", bootstrap,
        "--input-topic", topics["in"],
        "--output-topic", topics["out"],
        "--dead-letter-topic", topics["dlq"],
        "--changelog-topic", topics["log"],
        "--group-id", group,
        "--instance-id", instance,
        "--model-dir", str(model_dir),
        *extra,
    ]  # fmt: skip


def start_serve(args: list[str], log: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `rnnwatch serve` with ``args``, its /metrics on 127.0.0.1:``port`` and its output appended to ``log``."""
    command = [
        sys.executable,
        "-m",
        "stream.cli",
        "serve",
        *args,
        "--metrics-port",
        str(port),
        "--metrics-host",
        "127.0.0.1",
        "--log-format",
        "json",
    ]
    with open(log, "ab") as handle:
        return subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=handle, env={**os.environ, **(env or {})})


def tail(log: Path, chars: int = 4000) -> str:
    """The end of a replica log, for assertion messages."""
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"
