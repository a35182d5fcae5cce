"""The systemd unit: restarts on failure, reads an EnvironmentFile, is hardened, and passes systemd-analyze."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from stream.service.config import load_config

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = SYSTEMD_DIR / "rnnwatch.service"
INSTALLED_BINARY = "/opt/rnnwatch/bin/rnnwatch"


def _unit() -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value (systemd allows repeated keys)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        else:
            key, _, value = line.partition("=")
            sections[section][key].append(value)
    return sections


def test_unit_runs_serve_as_an_unprivileged_user_with_an_environment_file() -> None:
    service = _unit()["Service"]
    assert service["ExecStart"] == [f"{INSTALLED_BINARY} serve"]
    assert service["User"] == ["rnnwatch"]
    assert service["EnvironmentFile"] == ["/etc/rnnwatch/rnnwatch.env"]
    assert service["Restart"] == ["on-failure"]
    assert _unit()["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_is_hardened() -> None:
    service = _unit()["Service"]
    for key, value in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ]:
        assert service[key] == [value], key
    assert "MemoryDenyWriteExecute" not in service, "Numba's JIT needs writable+executable memory"


def test_example_environment_file_is_a_valid_service_config() -> None:
    lines = (SYSTEMD_DIR / "rnnwatch.env.example").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert load_config(env=env).guarantee == "exactly_once"


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    return found


def _unit_with_runnable_binary(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at a stand-in executable (verify checks that the binary exists)."""
    binary = tmp_path / "rnnwatch"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED_BINARY, str(binary)))
    return unit


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    unit = _unit_with_runnable_binary(tmp_path)
    result = subprocess.run([_systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"warnings (unknown keys, bad values):\n{result.stderr}"


def _security(unit: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze's exposure rating; exit code 1 above 2.0 on its 0-10 scale (--threshold is x10)."""
    return subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_systemd_analyze_rates_the_unit_exposure_ok(tmp_path: Path) -> None:
    result = _security(_unit_with_runnable_binary(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level" in result.stdout


def test_the_exposure_check_fails_without_the_hardening(tmp_path: Path) -> None:
    unit = _unit_with_runnable_binary(tmp_path)
    hardening = ("Protect", "Private", "Restrict", "NoNewPrivileges", "SystemCall", "CapabilityBoundingSet")
    kept = [line for line in unit.read_text().splitlines(keepends=True) if not line.startswith(hardening)]
    unit.write_text("".join(kept))
    assert _security(unit).returncode != 0
