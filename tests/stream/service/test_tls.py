"""A broker with TLS listeners (deploy/kafka/ssl.properties.in): the service scores events over SSL, SASL_SSL,
TLS with a client certificate, and without the host name check when told so; a certificate of an unknown CA,
for another host name or expired stops it at start with one line that names the cause and what to check."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.cli import main
from stream.errors import ServiceError
from stream.service.app import Service
from stream.service.config import ServiceConfig, load_config
from tests.kafka_helpers import run_sync, secured_broker, service_topics, topic_maker, unique_name
from tests.stream.service_harness import config_for, event, publish, read_all, run_service_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

USER, PASSWORD = "rnnwatch", "rnnwatch-dev-secret"  # deploy/kafka/ssl.properties.in, listener SASL_SSL
WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=5)
LISTENERS = ("ssl", "sasl_ssl", "mtls", "wrong_host", "expired")


@dataclasses.dataclass(frozen=True)
class TlsBroker:
    plaintext: str
    listeners: dict[str, str]  # listener name (lower case) -> bootstrap address
    tls: Path  # the certificates deploy/kafka/tls-certs.sh made


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """A broker of this module's own with every TLS listener of ssl.properties.in."""
    run_dir = tmp_path_factory.mktemp("kafka-tls")
    with secured_broker(run_dir, "ssl.properties.in", USER, PASSWORD) as plain:
        listeners = {name: (run_dir / f"{name}_bootstrap").read_text().strip() for name in LISTENERS}
        yield TlsBroker(plain, listeners, run_dir / "tls")


def _secured(config: ServiceConfig, env: dict[str, str]) -> ServiceConfig:
    """Security settings as an operator gives them, through RNNWATCH_SECURITY_* variables."""
    loaded = load_config(env=env)
    assert PASSWORD not in repr(loaded)
    return dataclasses.replace(config, security=loaded.security)


def _env(
    broker: TlsBroker, listener: str, cafile: str = "ca.pem", mechanism: str = "PLAIN", password: str = PASSWORD
) -> dict[str, str]:
    env = {"RNNWATCH_SECURITY_PROTOCOL": "SSL", "RNNWATCH_SECURITY_SSL_CAFILE": str(broker.tls / cafile)}
    if listener == "sasl_ssl":
        env |= {
            "RNNWATCH_SECURITY_PROTOCOL": "SASL_SSL",
            "RNNWATCH_SECURITY_SASL_MECHANISM": mechanism,
            "RNNWATCH_SECURITY_SASL_USERNAME": USER,
            "RNNWATCH_SECURITY_SASL_PASSWORD": password,
        }
    if listener == "wrong_host":  # accepted without the host name check (ssl_check_hostname = false)
        env["RNNWATCH_SECURITY_SSL_CHECK_HOSTNAME"] = "false"
    if listener == "mtls":
        env |= {
            "RNNWATCH_SECURITY_SSL_CERTFILE": str(broker.tls / "client.pem"),
            "RNNWATCH_SECURITY_SSL_KEYFILE": str(broker.tls / "client.key"),
        }
    return env


@pytest.mark.parametrize(
    ("listener", "mechanism"),
    [("ssl", None), ("sasl_ssl", "PLAIN"), ("sasl_ssl", "SCRAM-SHA-256"), ("mtls", None), ("wrong_host", None)],
    ids=["ssl", "sasl_ssl-plain", "sasl_ssl-scram", "client-certificate", "no-host-name-check"],
)
def test_the_service_scores_events_over_tls(tls_broker: TlsBroker, listener: str, mechanism: str | None) -> None:
    topics = service_topics(topic_maker(tls_broker.plaintext))
    events = [(b"s", event("s", 1000.0 + i, float(i % 5))) for i in range(20)]
    run_sync(publish(tls_broker.plaintext, topics["input"], events))
    config = config_for(tls_broker.listeners[listener], topics, unique_name("g"))
    config = _secured(config, _env(tls_broker, listener, mechanism=mechanism or "PLAIN"))
    assert config.security.protocol == ("SASL_SSL" if listener == "sasl_ssl" else "SSL")

    scored = lambda s: s.metrics.value("rnnwatch_events_scored_total") >= len(events)  # noqa: E731
    run_sync(run_service_until(config, scored, weights=WEIGHTS))
    assert len(run_sync(read_all(tls_broker.plaintext, topics["output"], len(events)))) == len(events)


@pytest.mark.parametrize(
    ("listener", "cafile", "expected"),
    [
        ("ssl", "other-ca.pem", r"not signed by a CA that ssl_cafile \S*other-ca\.pem holds .*SSL_CAFILE"),
        ("wrong_host", "ca.pem", r"does not name the host .*IP address mismatch.*subjectAltName"),
        ("expired", "ca.pem", r"outside its validity period \(certificate has expired\); renew"),
        ("mtls", "ca.pem", r"cannot connect .*requires a client certificate \(ssl_certfile, ssl_keyfile\)"),
    ],
    ids=["unknown-ca", "wrong-host-name", "expired-certificate", "no-client-certificate"],
)
def test_a_certificate_problem_fails_at_start_with_one_line_naming_the_cause(
    tls_broker: TlsBroker, listener: str, cafile: str, expected: str
) -> None:
    topics = service_topics(topic_maker(tls_broker.plaintext))
    bootstrap = tls_broker.listeners[listener]
    env = _env(tls_broker, "ssl", cafile)
    config = _secured(config_for(bootstrap, topics, unique_name("g")), env)

    async def scenario() -> None:
        async with asyncio.timeout(30):  # fails fast: no hang on retries
            async with Service(config, WEIGHTS):
                pass

    with pytest.raises(ServiceError, match=expected) as raised:
        run_sync(scenario())
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message and "_ssl.c" not in message
    assert message.startswith(f"{'cannot connect' if listener == 'mtls' else 'TLS connection'} to Kafka at {bootstrap}")


def _config_file(tmp_path: Path, broker: TlsBroker, listener: str, cafile: str = "ca.pem") -> Path:
    """An operator's rnnwatch.toml for a TLS listener: [security] with the CA file, fresh topic names."""
    topics = {f"{role}_topic": unique_name(f"tls-{role}") for role in ("input", "output", "dead_letter", "changelog")}
    path = tmp_path / "rnnwatch.toml"
    path.write_text(
        f'bootstrap_servers = "{broker.listeners[listener]}"\n'
        + "".join(f'{key} = "{value}"\n' for key, value in topics.items())
        + f'[security]\nprotocol = "SSL"\nssl_cafile = "{broker.tls / cafile}"\n'
    )
    return path


def test_topics_create_works_over_tls_and_names_a_certificate_problem(
    tls_broker: TlsBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topics", "create", "--config", str(_config_file(tmp_path, tls_broker, "ssl"))]) == 0
    assert capsys.readouterr().out.count("created") == 4
    assert main(["topics", "create", "--config", str(_config_file(tmp_path, tls_broker, "ssl", "other-ca.pem"))]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnwatch topics: TLS connection to Kafka at") and "\n" not in err
    assert "not signed by a CA that ssl_cafile" in err


def test_serve_stops_at_start_with_one_line_for_an_expired_certificate(
    tls_broker: TlsBroker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    save_artifact(tmp_path / "model", WEIGHTS)
    config = _config_file(tmp_path, tls_broker, "expired")
    argv = ["serve", "--config", str(config), "--model-dir", str(tmp_path / "model"), "--metrics-port", "0"]
    assert main(argv) == 1
    err = capfd.readouterr().err
    failed = [line for line in err.splitlines() if "service failed" in line]
    assert len(failed) == 1 and "outside its validity period (certificate has expired)" in failed[0], err
    assert "Traceback" not in err


def test_a_wrong_password_over_sasl_ssl_is_a_sasl_error_not_a_tls_one(tls_broker: TlsBroker) -> None:
    topics = service_topics(topic_maker(tls_broker.plaintext))
    wrong = "not-the-password-42"
    env = _env(tls_broker, "sasl_ssl", mechanism="SCRAM-SHA-256", password=wrong)
    config = _secured(config_for(tls_broker.listeners["sasl_ssl"], topics, unique_name("g")), env)

    async def scenario() -> None:
        async with asyncio.timeout(30):
            async with Service(config, WEIGHTS):
                pass

    with pytest.raises(
        ServiceError, match=r"^SASL authentication to Kafka at \S+ \(SASL_SSL, SASL SCRAM-SHA-256"
    ) as raised:
        run_sync(scenario())
    assert wrong not in str(raised.value)


def test_train_replays_a_topic_over_sasl_ssl_with_serves_flags_and_names_a_certificate_problem(
    tls_broker: TlsBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rnnwatch train --topic` takes serve's --security-* flags (one declaration each) and connects with them."""
    topic = topic_maker(tls_broker.plaintext)()
    events = [(b"s", event("s", 1000.0 + i, float(i % 7))) for i in range(300)]
    run_sync(publish(tls_broker.plaintext, topic, events))
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    secured = ["--security-protocol", "SASL_SSL", "--security-ssl-cafile", str(tls_broker.tls / "ca.pem")]
    secured += ["--security-sasl-mechanism", "SCRAM-SHA-256", "--security-sasl-username", USER]
    secured += ["--security-sasl-password-file", str(password)]
    train = ["train", "--topic", topic, "--out", str(tmp_path / "model"), "--epochs", "1", "--hidden-size", "8"]
    train += ["--min-validation-steps", "0", "--no-progress"]
    assert main([*train, "--bootstrap-servers", tls_broker.listeners["sasl_ssl"], *secured]) == 0
    out, err = capsys.readouterr()
    assert f"replayed {topic}: 1 file(s), 300 rows, 300 accepted" in err and "current ->" in out

    other_ca = ["--security-protocol", "SSL", "--security-ssl-cafile", str(tls_broker.tls / "other-ca.pem")]
    assert main([*train, "--bootstrap-servers", tls_broker.listeners["ssl"], *other_ca]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnwatch train: TLS connection to Kafka at") and "\n" not in err
    assert "not signed by a CA that ssl_cafile" in err
