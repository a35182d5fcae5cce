"""Service configuration: frozen, keyword-only, from defaults < TOML file < RNNWATCH_* env vars < flags.

TOML layout: top-level keys are ``ServiceConfig`` fields; a ``[security]`` table holds ``SecurityConfig``
fields. Env vars: ``RNNWATCH_<FIELD>`` (e.g. ``RNNWATCH_INPUT_TOPIC``) and ``RNNWATCH_SECURITY_<FIELD>``
(e.g. ``RNNWATCH_SECURITY_SASL_USERNAME``). The SASL password comes from ``RNNWATCH_SECURITY_SASL_PASSWORD``
or from the file named by ``sasl_password_file`` (never from the TOML file itself); it is a ``Secret`` whose
repr and str are masked, so it is never logged.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from stream.errors import ConfigError

ENV_PREFIX = "RNNWATCH_"
Guarantee = Literal["exactly_once", "at_least_once"]
PublishMode = Literal["all", "anomalies"]
ScoringPipelineName = Literal["detector", "seasonal"]
OffsetReset = Literal["earliest", "latest"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Secret:
    """A secret string whose repr/str never show it; read it with ``reveal()`` where it is handed to a client."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself (only for passing it to the Kafka client)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, kw_only=True)
class SecurityConfig:
    """How to reach the brokers: TLS and/or SASL (PLAIN or SCRAM)."""

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    sasl_password_file: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for SSL and SASL_SSL: the broker's certificate verified against ``ssl_cafile`` (the
        system trust store when unset), its host name checked unless ``ssl_check_hostname`` is false, and the
        client certificate ``ssl_certfile``/``ssl_keyfile`` when set. Unreadable files raise ``ConfigError``."""
        from aiokafka.helpers import create_ssl_context

        files = {"ssl_cafile": self.ssl_cafile, "ssl_certfile": self.ssl_certfile, "ssl_keyfile": self.ssl_keyfile}
        for name, path in files.items():
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{name} {path} does not exist or is not a file")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ConfigError("ssl_keyfile is set without ssl_certfile (the client certificate it belongs to)")
        try:
            context = create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile)
        except ssl.SSLError as error:
            given = ", ".join(f"{name} {path}" for name, path in files.items() if path is not None)
            raise ConfigError(f"the TLS files ({given}) cannot be used: {error.reason or error}") from None
        except OSError as error:
            raise ConfigError(f"cannot read the TLS files: {error.strerror or error}") from None
        context.check_hostname = self.ssl_check_hostname
        return context

    def kafka_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients (security_protocol, ssl_context, sasl_*)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self.ssl_context()
        if self.protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.reveal() if self.sasl_password else None
        return options


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Everything `rnnwatch serve` needs besides the model weights."""

    bootstrap_servers: str = "localhost:9092"
    input_topic: str = "rnnwatch-events"
    output_topic: str = "rnnwatch-scores"
    dead_letter_topic: str = "rnnwatch-dead-letters"
    changelog_topic: str = "rnnwatch-state-changelog"
    group_id: str = "rnnwatch"
    instance_id: str = field(default_factory=socket.gethostname)  # replica name; transactional ids are per partition
    model_dir: str | None = None
    model_poll_seconds: float = 5.0  # how often model_dir is checked for a new artifact (0: only on SIGHUP)
    guarantee: Guarantee = "exactly_once"
    # where a group without committed offsets starts: "earliest" scores the retained history, "latest" only new events
    auto_offset_reset: OffsetReset = "earliest"
    max_batch_size: int = 16384  # events per getmany: larger batches amortise the per-transaction cost
    max_batch_wait_ms: int = 50
    session_timeout_ms: int = 10_000  # how long a dead replica keeps its partitions (broker min is 6000)
    publish: PublishMode = "all"
    anomaly_threshold: float = 0.99
    # "detector": the Detector's calibrated forecast surprise; "seasonal": rnncore.stages.pipeline.ScoringPipeline
    # (seasonal residual and surprise, range novelty, refractory: issue 6's NAB-tuned detector), single-value
    # streams
    scoring_pipeline: ScoringPipelineName = "detector"
    # a new (or evicted) stream's forecast score is 0 for this many events while its calibration learns what
    # surprise is normal for it (rnncore.calibration.ScoringParams.warmup_events); the envelope's raw term is not
    warmup_events: int = 200
    max_streams_per_partition: int = 100_000
    idle_ttl_seconds: float | None = None
    snapshot_every: int = 100  # delta records between full snapshots in the changelog
    restore_timeout_seconds: float = 300.0  # reading an assignment's changelog longer than this stops the service
    # SIGTERM/SIGINT: the batch in flight and the clients' close get this long, then are abandoned (nothing committed)
    shutdown_timeout_seconds: float = 30.0
    changelog_chunk_bytes: int = 512 * 1024
    max_message_bytes: int = 64 * 1024
    max_key_bytes: int = 256
    archive_dir: str | None = None  # where consumed events are archived as rolling JSON Lines (None: off)
    archive_max_bytes: int = 64 * 1024 * 1024
    archive_max_age_seconds: float = 3600.0
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9108
    status_log_seconds: float = 60.0  # one INFO status line this often (0: off)
    security: SecurityConfig = field(default_factory=SecurityConfig)

    def __post_init__(self) -> None:
        for name in (
            "max_batch_size",
            "max_streams_per_partition",
            "snapshot_every",
            "changelog_chunk_bytes",
            "max_message_bytes",
            "max_key_bytes",
            "session_timeout_ms",
            "archive_max_bytes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.status_log_seconds < 0:
            raise ConfigError(f"status_log_seconds must be >= 0 (0: off), got {self.status_log_seconds}")
        if self.model_poll_seconds < 0 or self.archive_max_age_seconds <= 0:
            raise ConfigError(
                "model_poll_seconds must be >= 0 and archive_max_age_seconds > 0, got "
                f"{self.model_poll_seconds} and {self.archive_max_age_seconds}"
            )
        choice_fields = (
            ("guarantee", Guarantee),
            ("publish", PublishMode),
            ("scoring_pipeline", ScoringPipelineName),
            ("auto_offset_reset", OffsetReset),
        )
        for name, choices in choice_fields:
            if getattr(self, name) not in get_args(choices):
                raise ConfigError(f"{name} must be one of {get_args(choices)}, got {getattr(self, name)!r}")
        for name in ("restore_timeout_seconds", "shutdown_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_batch_wait_ms < 0:
            raise ConfigError(f"max_batch_wait_ms must be >= 0, got {self.max_batch_wait_ms}")
        if not 0.0 <= self.anomaly_threshold <= 1.0:
            raise ConfigError(f"anomaly_threshold must be in [0, 1], got {self.anomaly_threshold}")
        if not 0 <= self.warmup_events <= 8000:
            raise ConfigError(
                f"warmup_events must be in [0, 8000] (the calibration's long window), got {self.warmup_events}"
            )
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be in 0..65535, got {self.metrics_port}")
        topics = [self.input_topic, self.output_topic, self.dead_letter_topic, self.changelog_topic]
        if len(set(topics)) != len(topics):
            raise ConfigError(f"input, output, dead-letter and changelog topics must differ, got {topics}")


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Coerce a TOML or env value to the field's type (str from env), with an error naming ``where``."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        return _convert(value, options[0], where)
    if origin is Literal:
        if value not in get_args(annotation):
            raise ConfigError(f"{where}: {value!r} is not one of {get_args(annotation)}")
        return value
    if annotation is Secret:
        return value if isinstance(value, Secret) else Secret(str(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: {value!r} is not a boolean")
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {value!r} is not a valid {annotation.__name__}") from None
    return value


def _layer(cls: type, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown {cls.__name__} settings {unknown}")
    return {name: _convert(value, hints[name], f"{source} {name}") for name, value in values.items()}


def _from_env(cls: type, env: Mapping[str, str], prefix: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    hints = get_type_hints(cls)
    found: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        variable = f"{prefix}{f.name.upper()}"
        if variable in env:
            found[f.name] = _convert(env[variable], hints[f.name], variable)
    return found


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServiceConfig:
    """Merge defaults < TOML file < env vars < ``overrides`` (flags; None values are ignored)."""
    env = os.environ if env is None else env
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                file_values = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    file_security = file_values.pop("security", {})
    if "sasl_password" in file_security:
        raise ConfigError(f"{path}: put the SASL password in RNNWATCH_SECURITY_SASL_PASSWORD or sasl_password_file")
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    flag_security = flags.pop("security", {})
    security: dict[str, Any] = {}
    security.update(_layer(SecurityConfig, file_security, f"{path} [security]"))
    security.update(_from_env(SecurityConfig, env, f"{ENV_PREFIX}SECURITY_"))
    security.update(_layer(SecurityConfig, flag_security, "flag"))
    if security.get("sasl_password") is None and security.get("sasl_password_file"):
        secret_path = Path(security["sasl_password_file"])
        try:
            security["sasl_password"] = Secret(secret_path.read_text(encoding="utf-8").strip())
        except OSError as error:
            raise ConfigError(f"cannot read sasl_password_file {secret_path}: {error.strerror}") from None
    values: dict[str, Any] = {}
    values.update(_layer(ServiceConfig, file_values, str(path)))
    values.update(_from_env(ServiceConfig, env, ENV_PREFIX, skip=("security",)))
    values.update(_layer(ServiceConfig, flags, "flag"))
    values["security"] = SecurityConfig(**security)
    if values["security"].protocol.startswith("SASL") and not values["security"].sasl_username:
        raise ConfigError("SASL needs sasl_username (RNNWATCH_SECURITY_SASL_USERNAME or [security] in the file)")
    if values["security"].protocol.endswith("SSL"):
        values["security"].ssl_context()  # unreadable TLS files are a configuration error, before any connection
    return ServiceConfig(**values)
