"""Python handle on the local development broker (deploy/kafka/broker.sh), for tests, the demo and `rnnwatch broker`.

From a checkout the scripts are ``deploy/kafka`` and keep their jars and run directories beside them. An installed
package (wheel) carries the same files as data in ``<prefix>/share/rnnwatch/kafka``, which may be read-only: its
jars and run directories then live in the user's cache (``$XDG_CACHE_HOME/rnnwatch/kafka``, else
``~/.cache/rnnwatch/kafka``, or ``$RNNWATCH_KAFKA_STATE_DIR``).
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path

from stream.errors import BrokerError

CHECKOUT_DIR = Path(__file__).resolve().parents[1] / "deploy" / "kafka"
SHARE = ("share", "rnnwatch", "kafka")  # where pyproject's data-files put deploy/kafka in an installed package


def _installed_dirs() -> list[Path]:
    """Candidate share directories of an installed package: the environment's data path and the prefix above
    the site-packages holding this module (a ``pip install --prefix`` or ``--target`` layout)."""
    package_prefix = Path(__file__).resolve().parents[4] if len(Path(__file__).resolve().parents) > 4 else None
    found = [Path(sysconfig.get_path("data")).joinpath(*SHARE)]
    if package_prefix is not None:
        found.append(package_prefix.joinpath(*SHARE))
    return found


def deploy_dir() -> Path:
    """Where broker.sh lives: $RNNWATCH_KAFKA_DEPLOY_DIR, else deploy/kafka of the checkout, else the installed copy."""
    override = os.environ.get("RNNWATCH_KAFKA_DEPLOY_DIR")
    candidates = [Path(override)] if override else [CHECKOUT_DIR, *_installed_dirs()]
    for path in candidates:
        if (path / "broker.sh").is_file():
            return path
    where = ", ".join(str(p) for p in candidates)
    raise BrokerError(f"broker.sh not found (looked in {where}); reinstall rnnwatch or set RNNWATCH_KAFKA_DEPLOY_DIR")


def state_dir(scripts: Path) -> Path:
    """Where broker.sh keeps its jars and run directories: beside a checkout's scripts, else the user's cache."""
    override = os.environ.get("RNNWATCH_KAFKA_STATE_DIR")
    if override:
        return Path(override)
    if scripts not in _installed_dirs():  # a checkout, or a directory given by RNNWATCH_KAFKA_DEPLOY_DIR
        return scripts
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rnnwatch" / "kafka"


class LocalBroker:
    """A single-node KRaft broker on a free loopback port, run by broker.sh in its own run directory."""

    def __init__(
        self, run_dir: str | Path | None = None, extra_config: str | Path | None = None, port: int | None = None
    ) -> None:
        scripts = deploy_dir()
        self.script = scripts / "broker.sh"
        self.state = state_dir(scripts)
        default_run = os.environ.get("RNNWATCH_KAFKA_RUN_DIR")
        self.run_dir = (
            Path(run_dir) if run_dir else Path(default_run) if default_run else self.state / ".run" / "default"
        )
        self.extra_config = Path(extra_config) if extra_config else None
        self.port = port  # None: a free one (or $RNNWATCH_KAFKA_PORT, which broker.sh reads)
        self.bootstrap: str | None = None

    def _call(self, *args: str, timeout: float = 600) -> str:
        env = {**os.environ, "RNNWATCH_KAFKA_STATE_DIR": str(self.state)}
        if self.port is not None:
            env["RNNWATCH_KAFKA_PORT"] = str(self.port)
        result = subprocess.run(
            ["bash", str(self.script), *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
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
