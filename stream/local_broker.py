"""Python handle on the local development broker (deploy/kafka/broker.sh), for tests and the demo."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from stream.errors import StreamError


class BrokerError(StreamError):
    """The local broker could not be fetched, started or stopped; the message is broker.sh's own line."""


def deploy_dir() -> Path:
    """Where deploy/kafka lives: $RNNWATCH_KAFKA_DEPLOY_DIR, else beside the source checkout."""
    override = os.environ.get("RNNWATCH_KAFKA_DEPLOY_DIR")
    path = Path(override) if override else Path(__file__).resolve().parents[1] / "deploy" / "kafka"
    if not (path / "broker.sh").is_file():
        raise BrokerError(f"deploy/kafka/broker.sh not found at {path}; set RNNWATCH_KAFKA_DEPLOY_DIR")
    return path


class LocalBroker:
    """A single-node KRaft broker on a free loopback port, run by broker.sh in its own run directory."""

    def __init__(self, run_dir: str | Path | None = None, extra_config: str | Path | None = None) -> None:
        self.script = deploy_dir() / "broker.sh"
        self.run_dir = Path(run_dir) if run_dir else deploy_dir() / ".run" / "default"
        self.extra_config = Path(extra_config) if extra_config else None
        self.bootstrap: str | None = None

    def _call(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run(
            ["bash", str(self.script), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
            raise BrokerError(lines[-1] if lines else f"broker.sh {args[0]} failed with exit {result.returncode}")
        return result.stdout.strip()

    def start(self) -> str:
        """Start (or find running) and return the bootstrap address 'host:port'."""
        args = ["start", str(self.run_dir)]
        if self.extra_config:
            args.append(str(self.extra_config))
        self.bootstrap = self._call(*args).splitlines()[-1]
        return self.bootstrap

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after 30 s); a no-op when it is not running."""
        self._call("stop", str(self.run_dir), timeout=60)
        self.bootstrap = None

    def resume(self) -> str:
        """Start a broker stopped by ``stop()`` again on the same port and data (a broker outage ending)."""
        self.bootstrap = self._call("resume", str(self.run_dir)).splitlines()[-1]
        return self.bootstrap

    def status(self) -> str | None:
        """The bootstrap address if this run directory's broker is running, else None."""
        try:
            return self._call("status", str(self.run_dir), timeout=30)
        except BrokerError:
            return None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
