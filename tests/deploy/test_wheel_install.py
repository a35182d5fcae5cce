"""The wheel carries the development broker's scripts: `rnnwatch broker` works from an installed package, with
its jars and run directory in the user's cache and nothing written into the (read-only) installed files."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rnncore.calibration_prior import PRIOR_FIELD, CalibrationPrior
from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights

ROOT = Path(__file__).resolve().parents[2]
SHARE = "share/rnnwatch/kafka"

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _source_copy(target: Path) -> Path:
    """The tracked files of the checkout as they are now (a build in the checkout would leave build/ there)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _install(wheel: Path, prefix: Path) -> Path:
    """Lay the wheel out under ``prefix`` as an installer does (purelib to site-packages, ``.data/data/`` to the
    prefix). Not ``pip install --prefix``: pip would first uninstall the developer's editable rnnwatch."""
    site = prefix / "lib" / "python3" / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            head, _, rest = name.partition(".data/data/")
            target = prefix / rest if rest else site / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
            mode = archive.getinfo(name).external_attr >> 16
            if mode:
                target.chmod(mode & 0o777)
    return site


def _read_only(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _installed(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """The checkout built as a wheel and laid out under ``tmp_path/prefix`` (its data files read-only): the site
    directory, a working directory that is not a checkout, and the environment that runs the installed package."""
    source = _source_copy(tmp_path / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)], check=True)
    (wheel,) = tmp_path.glob("rnnwatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for script in ("broker.sh", "pom.xml", "server.properties.in", "tls-certs.sh"):
        assert any(n.endswith(f".data/data/{SHARE}/{script}") for n in names), script
    prefix = tmp_path / "prefix"
    site = _install(wheel, prefix)
    _read_only(prefix / SHARE)
    work = tmp_path / "elsewhere"  # not a checkout: nothing relative to it can be found by accident
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNNWATCH_KAFKA")}
    env.update(
        PYTHONPATH=str(site),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        RNNWATCH_KAFKA_JARS=str(ROOT / "deploy" / "kafka" / ".jars"),  # fetched by setup.sh: no second download
    )
    return site, work, env


def test_broker_starts_and_stops_from_an_installed_wheel(tmp_path: Path) -> None:
    site, work, env = _installed(tmp_path)
    prefix = tmp_path / "prefix"

    def rnnwatch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stream.cli", *args], cwd=work, env=env, capture_output=True, text=True, timeout=120
        )

    where = subprocess.run(
        [sys.executable, "-c", "import stream.local_broker as b; print(b.__file__, b.deploy_dir())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(site)) and where[1] == str(prefix / SHARE), where
    started = rnnwatch("broker", "start")
    try:
        assert started.returncode == 0, started.stderr
        address = started.stdout.strip().splitlines()[-1]
        assert address.startswith("127.0.0.1:")
        assert rnnwatch("broker", "status").stdout.strip() == address
        assert (tmp_path / "cache" / "rnnwatch" / "kafka" / ".run" / "default" / "server.log").exists()
    finally:
        stopped = rnnwatch("broker", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert rnnwatch("broker", "status").returncode == 1


def test_the_demo_runs_from_an_installed_wheel_and_stops_its_broker(tmp_path: Path) -> None:
    """`rnnwatch demo` from the installed package: its own broker from the wheel's scripts, the fleet scored and
    reported, the broker stopped; a cached model of the fleet, so no training here (the checkout's tests train)."""
    _, work, env = _installed(tmp_path)
    out = work / "demo"
    prior = CalibrationPrior(
        mean_surprise=0.0, var_surprise=1.0, mean_short=0.0, var_short=0.1, events=1000, streams=10
    )
    weights = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=1)
    save_artifact(out / "model", weights, {PRIOR_FIELD: prior.to_dict()})
    (out / "model-fleet.json").write_text(json.dumps({"seed": 1, "streams": 10, "history_events": 2000}))
    demo = subprocess.run(
        [sys.executable, "-m", "stream.cli", "demo", "--streams", "10", "--events-per-stream", "200", "--rate", "2000",
         "--partitions", "2", "--out", str(out)],
        cwd=work, env={**env, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"model: reusing {out / 'model'}" in demo.stdout  # the cached model, not trained here
    assert "2,000 of 2,000 events scored" in demo.stdout, demo.stdout
    flagged = int(demo.stdout.split("flagged ")[1].split()[0])
    assert flagged > 0, demo.stdout  # 200 events per stream are past the warm-up of a model with the prior
    assert (out / "demo.png").is_file()
    status = subprocess.run(["pgrep", "-f", str(out / "broker")], capture_output=True, text=True, check=False)
    assert status.stdout.strip() == ""  # the demo's broker is gone
