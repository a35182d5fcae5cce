"""The README's newcomer path, run as written: its two shell blocks between the ``newcomer-path`` markers, line by
line in one bash session (the serve line in the background, as a second terminal would leave it), against the
real broker the first block starts, with each step's output checked.

The working directory stands in for a fresh clone: it holds only links to the checkout's ``.venv`` and
``deploy/``, so everything the path writes (``models/``) lands there. The broker's run directory
(``RNNWATCH_KAFKA_RUN_DIR``) and the metrics port are the only things set from outside, so the path neither
meets a developer's own broker nor a port in use.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- newcomer-path", "<!-- /newcomer-path -->"

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


def newcomer_blocks(readme: str) -> list[list[str]]:
    """The shell lines (comments stripped) of each ```bash block between the markers."""
    section = readme[readme.index(START) : readme.index(END)]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [[line.split(" #")[0].strip() for line in b.splitlines() if line.strip()] for b in blocks]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _script(first: list[str], second: list[str], port: int) -> str:
    """One bash session: every line a numbered step, the serve line backgrounded until /readyz answers."""
    lines = [
        "set -euo pipefail",
        "SERVE=",
        "trap '[ -n \"$SERVE\" ] && kill $SERVE 2>/dev/null; deploy/kafka/broker.sh stop >/dev/null 2>&1 || true' EXIT",
    ]
    for i, line in enumerate(first + ["BOOT=$(deploy/kafka/broker.sh status)", *second]):
        lines.append(f"echo {shlex.quote(f'@@step {i} {line}')}")
        if line.startswith("rnnwatch serve"):
            lines += [
                f"{line} >serve.log 2>&1 & SERVE=$!",
                f"READY='import urllib.request as u; u.urlopen(\"http://127.0.0.1:{port}/readyz\")'",
                'for _ in $(seq 240); do python -c "$READY" 2>/dev/null && break; kill -0 $SERVE || exit 3; '
                "sleep 0.5; done",
            ]
        else:
            lines.append(line)
        if line.startswith("BOOT="):
            lines.append('echo "BOOT=$BOOT"')
    lines += ["echo '@@step stop'", "kill -INT $SERVE; rc=0; wait $SERVE || rc=$?; SERVE=", 'echo "serve exited $rc"']
    return "\n".join(lines) + "\n"


def _steps(output: str) -> dict[str, str]:
    """Output per step, keyed by the step's command line."""
    found: dict[str, str] = {}
    for chunk in output.split("@@step ")[1:]:
        head, _, body = chunk.partition("\n")
        found[head.split(" ", 1)[1] if " " in head else head] = body
    return found


def test_the_readme_blocks_are_found() -> None:
    first, second = newcomer_blocks((ROOT / "README.md").read_text())
    assert first[0] == "source .venv/bin/activate" and any(line.startswith("rnnwatch serve") for line in first)
    assert any(line.startswith("rnnwatch send") for line in second)


def test_the_readme_newcomer_path_works_as_written(tmp_path: Path) -> None:
    first, second = newcomer_blocks((ROOT / "README.md").read_text())
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in (".venv", "deploy"):
        (clone / name).symlink_to(ROOT / name)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNNWATCH_")}
    env.update(RNNWATCH_KAFKA_RUN_DIR=str(tmp_path / "broker"), RNNWATCH_METRICS_PORT=str(port))
    result = subprocess.run(
        ["bash", "-c", _script(first, second, port)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    serve_log = (clone / "serve.log").read_text() if (clone / "serve.log").exists() else ""
    context = f"{result.stdout[-4000:]}\n--stderr--\n{result.stderr[-4000:]}\n--serve.log--\n{serve_log[-3000:]}"
    assert result.returncode == 0, context
    steps = _steps(result.stdout)

    def output_of(prefix: str) -> str:
        (key,) = [k for k in steps if k.startswith(prefix)]
        return steps[key]

    assert re.search(r"BOOT=127\.0\.0\.1:\d+", output_of("BOOT=$(deploy/kafka/broker.sh start)")), context
    trained = output_of("rnnwatch train")
    assert re.search(r"wrote models/\S+ \(model version \S+\); models/current -> ", trained), context
    assert "envelope: 20 streams" in trained, context
    created = output_of("rnnwatch topics create")
    for topic in ("rnnwatch-events", "rnnwatch-scores", "rnnwatch-dead-letters", "rnnwatch-state-changelog"):
        assert f"created: {topic}" in created, context
    assert "sent 40000 events of 20 streams to rnnwatch-events" in output_of("rnnwatch send"), context
    records = [json.loads(line) for line in output_of("rnnwatch tail").splitlines() if line.startswith("{")]
    assert len(records) == 5 and all(r["anomaly"] and r["score"] >= 0.99 for r in records), context
    assert all({"key", "time", "nll", "mean", "scale", "model_version"} <= r.keys() for r in records), context
    assert re.search(r"^\* \S+ +gru H=", output_of("rnnwatch model list"), flags=re.M), context
    assert "serve exited 0" in steps["stop"], context
    # aiokafka logs GroupCoordinatorNotAvailable at ERROR while a fresh broker creates __consumer_offsets; the
    # service's own loggers must stay quiet
    assert "Traceback" not in serve_log and not re.search(r" ERROR stream\.", serve_log), serve_log[-3000:]
