"""The wheel carries the development broker's scripts: `rnnwatch broker` works from an installed package, with
its jars and run directory in the user's cache and nothing written into the (read-only) installed files."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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


def test_broker_starts_and_stops_from_an_installed_wheel(tmp_path: Path) -> None:
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
