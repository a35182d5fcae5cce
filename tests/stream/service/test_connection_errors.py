"""describe_failure turns aiokafka's logged TLS errors into one line naming the cause (variants the TLS tests
against the real broker do not produce: a DNS host name, a certificate not yet valid, no chain sent)."""

from __future__ import annotations

import pytest

from stream.service.config import SecurityConfig, ServiceConfig
from stream.service.connection import describe_failure

SSL = ServiceConfig(bootstrap_servers="kafka.example:9093", security=SecurityConfig(protocol="SSL"))


def _line(detail: str) -> str:
    return f'Unable connect to "kafka.example:9093": [SSL: CERTIFICATE_VERIFY_FAILED] {detail} (_ssl.c:1006)'


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("certificate verify failed: unable to get local issuer certificate",
         "not signed by a CA that the system trust store (no ssl_cafile) holds (unable to get local issuer"),
        ("certificate verify failed: Hostname mismatch, certificate is not valid for 'kafka.example'.",
         "does not name the host it was reached at (Hostname mismatch, certificate is not valid for 'kafka.example')"),
        ("certificate verify failed: certificate is not yet valid",
         "outside its validity period (certificate is not yet valid); renew"),
        ("certificate verify failed: unsupported certificate purpose",
         "was not accepted (unsupported certificate purpose)"),
    ],
    ids=["unknown-ca", "dns-host-name", "not-yet-valid", "other"],
)  # fmt: skip
def test_certificate_failures_name_the_cause(detail: str, expected: str) -> None:
    message = describe_failure(SSL, [_line(detail)])
    assert message.startswith("TLS connection to Kafka at kafka.example:9093 (SSL) failed: ")
    assert expected in message and "_ssl.c" not in message and "\n" not in message


def test_a_handshake_failure_without_verification_says_to_check_the_listener() -> None:
    line = 'Unable connect to "kafka.example:9093": [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)'
    message = describe_failure(SSL, [line])
    assert "TLS handshake failed: [SSL: WRONG_VERSION_NUMBER] wrong version number; check that the listener" in message


def test_plaintext_and_sasl_failures_are_not_taken_for_tls() -> None:
    plain = ServiceConfig(bootstrap_servers="kafka.example:9092")
    assert describe_failure(plain, []).startswith("cannot connect to Kafka at kafka.example:9092 (PLAINTEXT)")
    empty = describe_failure(SSL, ['Unable connect to "kafka.example:9093": '])
    assert "the connection failed without a reason" in empty and "requires a client certificate" in empty
