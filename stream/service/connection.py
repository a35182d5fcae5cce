"""Clear errors for failed Kafka connections: aiokafka raises only "Unable to bootstrap" and logs the cause.

While the service's clients start, ``explained_connection_errors`` collects aiokafka's own error lines (for
example ``SaslAuthenticationFailed: Authentication failed: Invalid username or password``) and turns a
``KafkaConnectionError`` into a ``ServiceError`` that names the address, the protocol, the SASL mechanism and
user, the cause, and what to check. The password is never part of it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiokafka.errors import KafkaConnectionError

from stream.errors import StreamError
from stream.service.config import ServiceConfig


class KafkaConnectError(StreamError):
    """The service could not connect or authenticate to Kafka; the message says why and what to check."""


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR and message not in self.lines:
            self.lines.append(message)


def describe_failure(config: ServiceConfig, causes: list[str]) -> str:
    """One actionable sentence for a connection failure with the collected causes."""
    security = config.security
    how: str = security.protocol
    if security.protocol.startswith("SASL"):
        how += f", SASL {security.sasl_mechanism} as user {security.sasl_username!r}"
    auth = [c for c in causes if "Authentication" in c or "SaslAuthenticationFailed" in c]
    if auth:
        cause = auth[-1].split(": ", 1)[-1]
        advice = ("check the SASL username and password (RNNWATCH_SECURITY_SASL_USERNAME, "
                  "RNNWATCH_SECURITY_SASL_PASSWORD or sasl_password_file) and the mechanism the listener enables")
        return f"SASL authentication to Kafka at {config.bootstrap_servers} ({how}) failed: {cause}; {advice}"
    cause = causes[-1] if causes else "no broker answered"
    advice = "check bootstrap_servers, that the brokers are up, and that the security protocol matches the listener"
    return f"cannot connect to Kafka at {config.bootstrap_servers} ({how}): {cause}; {advice}"


@contextlib.asynccontextmanager
async def explained_connection_errors(config: ServiceConfig) -> AsyncIterator[None]:
    """Turn aiokafka's bare ``KafkaConnectionError`` into a ``KafkaConnectError`` that says why."""
    collector = _Collector()
    logger = logging.getLogger("aiokafka")
    logger.addHandler(collector)
    try:
        yield
    except KafkaConnectionError as error:
        raise KafkaConnectError(describe_failure(config, collector.lines)) from error
    finally:
        logger.removeHandler(collector)
