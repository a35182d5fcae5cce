"""Service configuration: precedence flags > env > file > defaults, validation, and masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.errors import ConfigError
from stream.service.config import Secret, ServiceConfig, load_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rnnwatch.toml"
    path.write_text(text)
    return path


def test_defaults_without_any_source() -> None:
    config = load_config(env={})
    assert config == ServiceConfig(instance_id=config.instance_id)
    assert config.guarantee == "exactly_once" and config.security.protocol == "PLAINTEXT"


def test_flags_beat_env_beat_file_beat_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path, 'input_topic = "from-file"\noutput_topic = "out-file"\nmax_batch_size = 10\ngroup_id = "g-file"\n'
    )
    env = {"RNNWATCH_OUTPUT_TOPIC": "out-env", "RNNWATCH_MAX_BATCH_SIZE": "20", "RNNWATCH_GROUP_ID": "g-env"}
    config = load_config(path, env=env, overrides={"group_id": "g-flag", "max_batch_wait_ms": None})
    assert config.input_topic == "from-file"
    assert config.output_topic == "out-env"
    assert config.max_batch_size == 20
    assert config.group_id == "g-flag"
    assert config.max_batch_wait_ms == 50  # a None flag is "not given"


def test_env_values_are_typed() -> None:
    config = load_config(
        env={
            "RNNWATCH_ANOMALY_THRESHOLD": "0.5",
            "RNNWATCH_IDLE_TTL_SECONDS": "none",
            "RNNWATCH_SECURITY_SSL_CHECK_HOSTNAME": "false",
        }
    )
    assert config.anomaly_threshold == 0.5 and config.idle_ttl_seconds is None
    assert config.security.ssl_check_hostname is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RNNWATCH_MAX_BATCH_SIZE": "many"}, "RNNWATCH_MAX_BATCH_SIZE"),
        ({"RNNWATCH_GUARANTEE": "maybe_once"}, "not one of"),
        ({"RNNWATCH_ANOMALY_THRESHOLD": "2"}, "anomaly_threshold"),
        ({"RNNWATCH_OUTPUT_TOPIC": "rnnwatch-events"}, "must differ"),
        ({"RNNWATCH_SECURITY_PROTOCOL": "SASL_SSL"}, "sasl_username"),
    ],
    ids=["not-an-int", "bad-literal", "out-of-range", "same-topic", "sasl-without-user"],
)
def test_invalid_settings_name_the_culprit(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env=env)


def test_unknown_file_keys_and_passwords_in_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown"):
        load_config(_write(tmp_path, "input_topicc = 'x'\n"), env={})
    with pytest.raises(ConfigError, match="SASL password"):
        load_config(_write(tmp_path, "[security]\nsasl_password = 'hunter2'\n"), env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml", env={})


def test_sasl_password_from_env_is_masked_everywhere() -> None:
    env = {
        "RNNWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "RNNWATCH_SECURITY_SASL_MECHANISM": "SCRAM-SHA-512",
        "RNNWATCH_SECURITY_SASL_USERNAME": "svc",
        "RNNWATCH_SECURITY_SASL_PASSWORD": "hunter2",
    }
    config = load_config(env=env)
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.security)
    assert config.security.sasl_password == Secret("hunter2")
    options = config.security.kafka_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "svc" and options["sasl_plain_password"] == "hunter2"


def test_sasl_password_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    path = _write(
        tmp_path, f'[security]\nprotocol = "SASL_PLAINTEXT"\nsasl_username = "u"\nsasl_password_file = "{secret}"\n'
    )
    config = load_config(path, env={})
    assert config.security.sasl_password is not None and config.security.sasl_password.reveal() == "s3cret"
    assert "s3cret" not in repr(config)


def test_config_is_frozen_and_keyword_only() -> None:
    config = ServiceConfig()
    with pytest.raises(AttributeError):
        config.input_topic = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ServiceConfig("localhost:9092")  # type: ignore[call-arg]


def test_unreadable_tls_files_are_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConfigError, match=rf"ssl_cafile {missing} does not exist"):
        load_config(env={"RNNWATCH_SECURITY_PROTOCOL": "SSL", "RNNWATCH_SECURITY_SSL_CAFILE": str(missing)})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"the TLS files \(ssl_cafile \S+garbage\.pem\) cannot be used"):
        load_config(
            env={
                "RNNWATCH_SECURITY_PROTOCOL": "SASL_SSL",
                "RNNWATCH_SECURITY_SASL_USERNAME": "u",
                "RNNWATCH_SECURITY_SSL_CAFILE": str(garbage),
            }
        )
    with pytest.raises(ConfigError, match="ssl_keyfile is set without ssl_certfile"):
        load_config(env={"RNNWATCH_SECURITY_PROTOCOL": "SSL", "RNNWATCH_SECURITY_SSL_KEYFILE": str(garbage)})


def test_a_service_given_an_unreadable_tls_file_stops_at_start_with_a_service_error(tmp_path: Path) -> None:
    import asyncio

    from rnncore.model.config import ModelConfig
    from rnncore.model.weights import ModelWeights
    from stream.errors import ServiceError
    from stream.service.app import Service
    from stream.service.config import SecurityConfig

    security = SecurityConfig(protocol="SSL", ssl_cafile=str(tmp_path / "nowhere.pem"))
    config = ServiceConfig(bootstrap_servers="127.0.0.1:9", security=security, metrics_port=0)
    weights = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=4), seed=0)

    async def scenario() -> None:
        async with Service(config, weights):
            pass

    with pytest.raises(ServiceError, match=r"ssl_cafile \S+nowhere\.pem does not exist"):
        asyncio.run(scenario())


def test_warmup_events_is_a_setting_with_a_bound() -> None:
    assert load_config(env={"RNNWATCH_WARMUP_EVENTS": "20"}).warmup_events == 20
    with pytest.raises(ConfigError, match="warmup_events must be in"):
        load_config(env={"RNNWATCH_WARMUP_EVENTS": "-1"})


def test_warmups_are_settings_with_the_librarys_defaults_and_bounds() -> None:
    from rnncore.calibration import ScoringParams

    library, service = ScoringParams(), ServiceConfig()
    assert (service.warmup_events, service.prior_warmup_events) == (
        library.warmup_events,
        library.prior_warmup_events,
    )  # what serve runs is what `score` and the benchmarks run
    assert load_config(env={"RNNWATCH_PRIOR_WARMUP_EVENTS": "12"}).prior_warmup_events == 12
    with pytest.raises(ConfigError, match="prior_warmup_events must be in"):
        load_config(env={"RNNWATCH_PRIOR_WARMUP_EVENTS": "1999"})
    with pytest.raises(ConfigError, match="warmup_events must be in"):
        load_config(env={"RNNWATCH_WARMUP_EVENTS": "2001"})  # above the long window ScoringParams refuses
