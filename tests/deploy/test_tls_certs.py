"""deploy/kafka/tls-certs.sh makes the development TLS material the broker's TLS listeners and their tests need."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "tls-certs.sh"
BASH = shutil.which("bash") or "/bin/bash"
OPENSSL = shutil.which("openssl")
PASSWORD = "rnnwatch-dev-tls"


def _run(directory: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(SCRIPT), str(directory)], capture_output=True, text=True, env=env, timeout=60)


def _pem(directory: Path, keystore: str) -> str:
    """The keystore's own certificate, PEM."""
    assert OPENSSL
    return subprocess.run(
        [OPENSSL, "pkcs12", "-in", str(directory / keystore), "-passin", f"pass:{PASSWORD}", "-nokeys", "-clcerts"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _certificate(directory: Path, keystore: str) -> str:
    """subject, validity and subjectAltName of the keystore's own certificate, as openssl prints them."""
    assert OPENSSL
    pem = _pem(directory, keystore)
    shown = subprocess.run(
        [OPENSSL, "x509", "-noout", "-subject", "-dates", "-ext", "subjectAltName"],
        input=pem,
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout


def _verify(directory: Path, cafile: str, certificate: str, *options: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL
    return subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(directory / cafile), *options, str(directory / certificate)],
        capture_output=True,
        text=True,
    )


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_the_certificates_are_what_the_tls_tests_say(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    assert _run(tls).returncode == 0
    names = {p.name for p in tls.iterdir()}
    assert {
        "ca.pem",
        "other-ca.pem",
        "broker.p12",
        "wrong-host.p12",
        "expired.p12",
        "client.pem",
        "client.key",
    } <= names
    broker = _certificate(tls, "broker.p12")
    assert "DNS:localhost, IP Address:127.0.0.1" in broker
    (tls / "broker-cert.pem").write_text(_pem(tls, "broker.p12"))
    assert _verify(tls, "ca.pem", "broker-cert.pem", "-purpose", "sslserver").returncode == 0  # valid now
    assert _verify(tls, "ca.pem", "client.pem", "-purpose", "sslclient").returncode == 0  # valid now
    wrong = _certificate(tls, "wrong-host.p12")
    assert "DNS:wrong-host.invalid" in wrong and "127.0.0.1" not in wrong
    assert "notAfter=Jan  2 00:00:00 2020 GMT" in _certificate(tls, "expired.p12")
    assert _verify(tls, "other-ca.pem", "client.pem").returncode != 0
    before = (tls / "ca.pem").read_bytes()
    assert _run(tls).returncode == 0 and (tls / "ca.pem").read_bytes() == before  # made once


def test_missing_openssl_is_one_clear_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mkdir", "dirname"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    result = _run(tmp_path / "tls", env={**os.environ, "PATH": str(bin_dir)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "tls-certs.sh: error: openssl is not installed (needed to make the development TLS certificates)"
    )
