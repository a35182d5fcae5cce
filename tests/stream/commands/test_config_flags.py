"""Config and CLI from one declaration: every setting has exactly one flag, by one naming rule, with its help,
default and env var in `--help`; a flag reaches the config; the same setting has the same name in every command."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

import pytest

from stream.cli import build_parser, main
from stream.commands.config_flags import config_flags, config_overrides
from stream.service.config import SecurityConfig, ServiceConfig, load_config


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _by_option(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: a for a in parser._actions for option in a.option_strings}


def _fields() -> list[tuple[str | None, dataclasses.Field[Any]]]:
    service = [(None, f) for f in dataclasses.fields(ServiceConfig) if f.name != "security"]
    return [*service, *(("security", f) for f in dataclasses.fields(SecurityConfig))]


def test_every_setting_has_exactly_one_serve_flag_with_help_default_and_env() -> None:
    serve = _subparsers()["serve"]
    options = _by_option(serve)
    for section, f in _fields():
        flag = "--" + "-".join(filter(None, (section, f.name))).replace("_", "-")
        env = "RNNWATCH_" + "_".join(filter(None, (section, f.name))).upper()
        if f.name == "sasl_password":  # never a flag: it would show in `ps`; env var or sasl_password_file
            assert flag not in options
            continue
        matching = [a for a in serve._actions if a.dest == "__".join(filter(None, (section, f.name)))]
        assert len(matching) == 1 and flag in matching[0].option_strings, flag
        action = matching[0]
        assert action.default is None, f"{flag}: an env var or the config file must still apply when it is absent"
        text = action.help or ""
        assert text and env in text and "(default: " in text, f"{flag}: {text}"
        if f.default is not dataclasses.MISSING and f.default is not None and f.metadata.get("shown") is None:
            shown = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
            assert f"(default: {shown};" in text, f"{flag}: {text}"


def test_help_shows_every_flag_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--anomaly-threshold X score at or above which an event is an anomaly (default: 0.99; " in text
    assert "--security-ssl-check-hostname, --no-security-ssl-check-hostname" in text
    assert "(default: the hostname; RNNWATCH_INSTANCE_ID)" in text
    for flag in config_flags():
        assert flag.option in text


def _other_value(kind: Any, default: Any, name: str) -> tuple[str, Any]:
    """A value unlike the default, as typed on the command line and as parsed."""
    if typing.get_origin(kind) is typing.Literal:
        value = next(c for c in typing.get_args(kind) if c != default)
        return value, value
    if kind is int:
        return str((default or 0) + 3), (default or 0) + 3
    if kind is float:
        return str((default or 0.0) + 0.25), (default or 0.0) + 0.25
    return f"x-{name}", f"x-{name}"


def test_every_flag_reaches_load_config_overrides() -> None:
    serve = _subparsers()["serve"]
    argv, expected, security = [], {}, {}
    for flag in config_flags():
        if flag.kind is bool:
            argv.append(f"--no-{flag.option[2:]}" if flag.default else flag.option)
            parsed: Any = not flag.default
        else:
            typed, parsed = _other_value(flag.kind, flag.default, flag.name)
            argv += [flag.option, typed]
        (security if flag.section else expected)[flag.name] = parsed
    overrides = config_overrides(serve.parse_args(argv))
    assert overrides == {**expected, "security": security}


def test_an_absent_flag_leaves_the_env_var_and_a_given_one_wins() -> None:
    serve = _subparsers()["serve"]
    env = {"RNNWATCH_MAX_BATCH_SIZE": "77", "RNNWATCH_SECURITY_SASL_USERNAME": "env-user"}
    config = load_config(None, env=env, overrides=config_overrides(serve.parse_args([])))
    assert config.max_batch_size == 77 and config.security.sasl_username == "env-user"
    given = serve.parse_args(["--max-batch-size", "5", "--security-sasl-username", "flag-user"])
    config = load_config(None, env=env, overrides=config_overrides(given))
    assert config.max_batch_size == 5 and config.security.sasl_username == "flag-user"


def test_a_setting_has_the_same_flag_in_every_command() -> None:
    """Where a command takes one of serve's settings, it spells it serve's way (an older spelling may follow)."""
    names = {flag.dest: flag.option for flag in config_flags()}
    renamed = {"model": "model_dir", "threshold": "anomaly_threshold", "pipeline": "scoring_pipeline"}
    seen: dict[str, set[str]] = {}
    for command, parser in _subparsers().items():
        for action in parser._actions:
            setting = renamed.get(action.dest, action.dest)
            if setting in names and action.option_strings:
                assert action.option_strings[0] == names[setting], (command, action.option_strings)
                seen.setdefault(setting, set()).add(command)
    assert {"serve", "score", "demo"} <= seen["anomaly_threshold"]
    assert {"serve", "score"} <= seen["model_dir"] and {"serve", "score"} <= seen["scoring_pipeline"]
    assert {"serve", "send", "tail", "topics", "train", "demo"} <= seen["bootstrap_servers"]
    assert {"serve", "send", "tail", "topics", "train"} <= seen["security__protocol"] & seen["security__ssl_cafile"]


def test_train_topics_security_flags_reach_the_kafka_client_options(tmp_path: Any) -> None:
    """`train --topic` connects as `serve` does: its --security-* flags become the replay's client options
    (a TLS broker takes them: tests/stream/service/test_tls.py)."""
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    argv = ["--topic", "t", "--out", "m", "--security-protocol", "SASL_PLAINTEXT", "--security-sasl-mechanism"]
    argv += ["SCRAM-SHA-256", "--security-sasl-username", "u", "--security-sasl-password-file", str(password)]
    args = _subparsers()["train"].parse_args(argv)
    options = load_config(None, env={}, overrides=config_overrides(args)).security.kafka_options()
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "u",
        "sasl_plain_password": "s3cret",
    }


def test_offline_commands_take_serves_default() -> None:
    parsers = _subparsers()
    score = parsers["score"].parse_args(["--logs", "x", "--model-dir", "m", "--out", "o.jsonl"])
    defaults = ServiceConfig()
    assert (score.threshold, score.warmup_events, score.pipeline) == (
        defaults.anomaly_threshold,
        defaults.warmup_events,
        defaults.scoring_pipeline,
    )
    assert parsers["demo"].parse_args([]).threshold == defaults.anomaly_threshold
    old = parsers["score"].parse_args(["--logs", "x", "--model", "m", "--out", "o.jsonl", "--threshold", "0.5"])
    assert (old.model, old.threshold) == ("m", 0.5)  # the earlier spellings still work


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("rnnwatch ")


def test_readme_configuration_table_names_every_setting() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[3] / "README.md").read_text()
    table = readme[readme.index("## Configuration") :].split("\n## ", 1)[0]
    missing = [f.name for _, f in _fields() if f"`{f.name}`" not in table and f"security.{f.name}`" not in table]
    assert not missing, f"README's Configuration table lacks {missing}"
