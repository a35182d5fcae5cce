"""Clear errors for failed Kafka connections: aiokafka raises only "Unable to bootstrap" and logs the cause.

While the service's clients start, ``explained_connection_errors`` collects aiokafka's own error lines (for
example ``SaslAuthenticationFailed: Authentication failed: Invalid username or password``) and turns a
``KafkaConnectionError`` into a ``ServiceError`` that names the address, the protocol, the SASL mechanism and
user, the cause, and what to check: a wrong password, or a TLS certificate of an unknown CA, for another host
name, or expired. The password is never part of it.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator

from aiokafka.errors import KafkaConnectionError

from stream.errors import KafkaConnectError
from stream.service.config import ServiceConfig


class _Collector(logging.Handler):
    """Holds aiokafka's error lines while clients start (the explained failure repeats them); passes the rest on."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.held: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR:
            logging.getLogger().handle(record)  # where aiokafka's records go when nothing holds them
            return
        self.held.append(record)
        message = record.getMessage()
        if message not in self.lines:
            self.lines.append(message)

    def log_held(self) -> None:
        """Log the held error lines after all: the start went on, so no explanation carries them."""
        for record in self.held:
            logging.getLogger().handle(record)
        self.held.clear()


@contextlib.contextmanager
def held_kafka_errors(
    explained_by: tuple[type[BaseException], ...] = (KafkaConnectionError, KafkaConnectError),
) -> Iterator[_Collector]:
    """While inside, aiokafka's ERROR lines are collected instead of logged. They are dropped when one of
    ``explained_by`` leaves the block (its one line explains the failure: a CLI error is then one line, not
    aiokafka's and ours), and logged on any other exit."""
    collector = _Collector()
    logger = logging.getLogger("aiokafka")
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(collector)
    explained = False
    try:
        yield collector
    except explained_by:
        explained = True
        raise
    finally:
        logger.removeHandler(collector)
        logger.propagate = propagate
        if not explained:
            collector.log_held()


def describe_failure(config: ServiceConfig, causes: list[str]) -> str:
    """One actionable sentence for a connection failure with the collected causes."""
    security = config.security
    how: str = security.protocol
    if security.protocol.startswith("SASL"):
        how += f", SASL {security.sasl_mechanism} as user {security.sasl_username!r}"
    auth = [c for c in causes if "Authentication" in c or "SaslAuthenticationFailed" in c]
    if auth:
        cause = auth[-1].split(": ", 1)[-1]
        advice = (
            "check the SASL username and password (RNNWATCH_SECURITY_SASL_USERNAME, "
            "RNNWATCH_SECURITY_SASL_PASSWORD or sasl_password_file) and the mechanism the listener enables"
        )
        return f"SASL authentication to Kafka at {config.bootstrap_servers} ({how}) failed: {cause}; {advice}"
    tls = _tls_failure(config, causes) if security.protocol.endswith("SSL") else None
    if tls is not None:
        return f"TLS connection to Kafka at {config.bootstrap_servers} ({how}) failed: {tls}"
    cause = causes[-1] if causes else "no broker answered"
    if cause.endswith(": "):  # aiokafka logged an error without a message (e.g. TLS spoken to a plaintext listener)
        cause += "the connection failed without a reason"
    advice = "check bootstrap_servers, that the brokers are up, and that the security protocol matches the listener"
    if security.protocol.endswith("SSL"):
        advice += " (speaks TLS) and whether it requires a client certificate (ssl_certfile, ssl_keyfile)"
    return f"cannot connect to Kafka at {config.bootstrap_servers} ({how}): {cause}; {advice}"


_SSL_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)\s*$")


def _tls_failure(config: ServiceConfig, causes: list[str]) -> str | None:
    """Cause and advice for a failed TLS handshake (certificate verification above all), or None."""
    lines = [c for c in causes if "SSL" in c or "certificate" in c]
    if not lines:
        return None
    line = _SSL_SUFFIX.sub("", lines[-1]).rstrip(".")
    detail = line.split("certificate verify failed: ", 1)[1] if "certificate verify failed: " in line else None
    security = config.security
    trusted = f"ssl_cafile {security.ssl_cafile}" if security.ssl_cafile else "the system trust store (no ssl_cafile)"
    if detail is None:
        cause = line.split('": ', 1)[-1]
        return (
            f"TLS handshake failed: {cause}; check that the listener at bootstrap_servers speaks "
            "TLS (protocol SSL or SASL_SSL) and, if it requires client certificates, ssl_certfile and ssl_keyfile"
        )
    lowered = detail.lower()
    if "expired" in lowered or "not yet valid" in lowered:
        return (
            f"the broker's certificate is outside its validity period ({detail}); renew the broker's "
            "certificate (or correct the clock of the broker or of this host)"
        )
    if "mismatch" in lowered or "not valid for" in lowered:
        return (
            f"the broker's certificate does not name the host it was reached at ({detail}); use a host "
            "name or address the certificate lists (subjectAltName) in bootstrap_servers and the broker's "
            "advertised.listeners, or reissue the certificate for it"
        )
    if "issuer" in lowered or "self-signed" in lowered or "self signed" in lowered or "untrusted" in lowered:
        return (
            f"the broker's certificate is not signed by a CA that {trusted} holds ({detail}); set "
            "ssl_cafile (RNNWATCH_SECURITY_SSL_CAFILE) to the CA that signed the broker's certificate"
        )
    return f"the broker's certificate was not accepted ({detail}); check ssl_cafile and the broker's certificate"


@contextlib.asynccontextmanager
async def explained_connection_errors(config: ServiceConfig) -> AsyncIterator[None]:
    """Turn aiokafka's bare ``KafkaConnectionError`` into a ``KafkaConnectError`` that says why (and carries
    aiokafka's own error lines, which are then not logged a second time)."""
    with held_kafka_errors() as collector:
        try:
            yield
        except KafkaConnectionError as error:
            raise KafkaConnectError(describe_failure(config, collector.lines)) from error
