"""`rnnwatch broker start --port N`: the development broker on a fixed address, which status prints too."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stream.cli import main


@pytest.mark.kafka
@pytest.mark.timeout(240)
def test_broker_starts_on_the_port_it_is_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run_dir = ["--run-dir", str(tmp_path / "broker")]
    assert main(["broker", "start", "--port", str(port), *run_dir]) == 0
    try:
        assert capsys.readouterr().out.strip() == f"127.0.0.1:{port}"
        assert main(["broker", "status", *run_dir]) == 0
        assert capsys.readouterr().out.strip() == f"127.0.0.1:{port}"
    finally:
        assert main(["broker", "stop", *run_dir]) == 0
