"""A broker with a SASL listener (PLAIN and SCRAM-SHA-256): right credentials work, wrong ones fail clearly."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.errors import ServiceError
from stream.service.app import Service
from stream.service.config import SecurityConfig, ServiceConfig, load_config
from tests.kafka_helpers import run_sync, secured_broker, service_topics, topic_maker, unique_name
from tests.stream.service_harness import config_for, event, publish, read_all, run_service_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

USER, PASSWORD = "rnnwatch", "rnnwatch-dev-secret"  # deploy/kafka/sasl.properties.in and the SCRAM format arg
WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=3)


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(plaintext bootstrap, SASL bootstrap) of a broker of this module's own."""
    run_dir = tmp_path_factory.mktemp("kafka-sasl")
    with secured_broker(run_dir, "sasl.properties.in", USER, PASSWORD) as plain:
        yield plain, (Path(run_dir) / "sasl_bootstrap").read_text().strip()


def _secured(config: ServiceConfig, mechanism: str, password: str, tmp_path: Path) -> ServiceConfig:
    """Security settings as an operator gives them: username in env, password in a file."""
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    loaded = load_config(
        env={
            "RNNWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "RNNWATCH_SECURITY_SASL_MECHANISM": mechanism,
            "RNNWATCH_SECURITY_SASL_USERNAME": USER,
            "RNNWATCH_SECURITY_SASL_PASSWORD_FILE": str(secret),
        }
    )
    assert isinstance(loaded.security, SecurityConfig) and PASSWORD not in repr(loaded)
    return dataclasses.replace(config, security=loaded.security)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_right_credentials_score_events_through_the_sasl_listener(
    sasl_broker: tuple[str, str], mechanism: str, tmp_path: Path
) -> None:
    plain, sasl = sasl_broker
    topics = service_topics(topic_maker(plain))
    events = [(b"s", event("s", 1000.0 + i, float(i % 5))) for i in range(20)]
    run_sync(publish(plain, topics["input"], events))
    config = _secured(config_for(sasl, topics, unique_name("g")), mechanism, PASSWORD, tmp_path)

    scored = lambda s: s.metrics.value("rnnwatch_events_scored_total") >= len(events)  # noqa: E731
    run_sync(run_service_until(config, scored, weights=WEIGHTS))
    assert len(run_sync(read_all(plain, topics["output"], len(events)))) == len(events)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_wrong_credentials_fail_at_start_with_a_clear_error_that_hides_the_password(
    sasl_broker: tuple[str, str], mechanism: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain, sasl = sasl_broker
    topics = service_topics(topic_maker(plain))
    wrong = "not-the-password-42"
    config = _secured(config_for(sasl, topics, unique_name("g")), mechanism, wrong, tmp_path)

    async def scenario() -> None:
        async with asyncio.timeout(30):  # fails fast: no hang on retries
            async with Service(config, WEIGHTS):
                pass

    with pytest.raises(ServiceError) as raised:
        run_sync(scenario())
    message = str(raised.value)
    assert "SASL authentication" in message and mechanism in message and f"user {USER!r}" in message
    assert "RNNWATCH_SECURITY_SASL_PASSWORD" in message  # says what to check
    assert wrong not in message and wrong not in caplog.text and wrong not in repr(config)


def test_no_broker_at_the_address_fails_at_start_with_what_to_check(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    topics = {kind: kind for kind in ("input", "output", "dlq", "changelog")}
    config = config_for(f"127.0.0.1:{port}", topics, "g")

    async def scenario() -> None:
        async with asyncio.timeout(30):
            async with Service(config, WEIGHTS):
                pass

    expected = rf"cannot connect to Kafka at 127.0.0.1:{port} \(PLAINTEXT\).*bootstrap_servers"
    with pytest.raises(ServiceError, match=expected):
        run_sync(scenario())
