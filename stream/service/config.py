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

from rnncore.calibration_prior import PRIOR_EVENTS, PRIOR_WARMUP_EVENTS, WARMUP_EVENTS
from stream.errors import ConfigError

ENV_PREFIX = "RNNWATCH_"
Guarantee = Literal["exactly_once", "at_least_once"]
PublishMode = Literal["all", "anomalies"]
ScoringPipelineName = Literal["detector", "seasonal"]
OffsetReset = Literal["earliest", "latest"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def setting(default: Any, help: str, *, shown: str | None = None, flag: bool = True) -> Any:
    """One setting's declaration: its default (a callable: a factory), the help its flag shows, the default as
    ``--help`` says it when the value itself would not (``shown``), and whether it has a flag at all. The flag,
    env var and TOML key all come from the field's name (``stream.commands.config_flags``)."""
    metadata = {"help": help, "shown": shown, "flag": flag}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


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

    protocol: SecurityProtocol = setting("PLAINTEXT", "how to talk to the brokers: TLS (SSL) and/or SASL")
    sasl_mechanism: SaslMechanism = setting("PLAIN", "SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)")
    sasl_username: str | None = setting(None, "SASL user")
    sasl_password: Secret | None = setting(
        None, "never a flag (it would show in ps): RNNWATCH_SECURITY_SASL_PASSWORD or sasl_password_file", flag=False
    )
    sasl_password_file: str | None = setting(None, "file holding the SASL password (read at start)")
    ssl_cafile: str | None = setting(
        None, "CA certificate(s) the broker's certificate is checked against", shown="the system trust store"
    )
    ssl_certfile: str | None = setting(None, "client certificate (for listeners that require one)")
    ssl_keyfile: str | None = setting(None, "private key of ssl_certfile")
    ssl_check_hostname: bool = setting(True, "check that the broker's certificate names the host it was reached at")

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

    bootstrap_servers: str = setting("localhost:9092", "Kafka bootstrap servers host:port[,host:port]")
    input_topic: str = setting("rnnwatch-events", "topic of input events (must exist)")
    output_topic: str = setting("rnnwatch-scores", "topic of score records")
    dead_letter_topic: str = setting("rnnwatch-dead-letters", "topic of rejected messages")
    changelog_topic: str = setting("rnnwatch-state-changelog", "compacted topic holding per-partition state")
    group_id: str = setting("rnnwatch", "consumer group (part of the per-partition transactional ids)")
    instance_id: str = setting(
        socket.gethostname, "replica name (transactional ids are per input partition)", shown="the hostname"
    )
    model_dir: str | None = setting(
        None, "model directory (rnnwatch train --out): a versioned store served at its current version, or an artifact"
    )
    model_poll_seconds: float = setting(5.0, "how often model_dir is checked for a new model (0: only on SIGHUP)")
    guarantee: Guarantee = setting("exactly_once", "exactly_once: outputs, state and offsets in one transaction")
    auto_offset_reset: OffsetReset = setting(
        "earliest", "where a group without committed offsets starts: earliest scores the retained history"
    )
    max_batch_size: int = setting(16384, "max events per micro-batch (larger batches amortise a transaction)")
    max_batch_wait_ms: int = setting(50, "longest wait for a micro-batch when nothing has arrived")
    session_timeout_ms: int = setting(10_000, "how long a silent replica keeps its partitions (broker min 6000)")
    transaction_timeout_ms: int = setting(
        60_000,
        "exactly_once: the broker aborts a transaction open longer than this (a replica frozen or cut off past it) "
        "and fences its producer; at most the broker's transaction.max.timeout.ms",
    )
    publish: PublishMode = setting("all", "score records for every event, or for anomalies only")
    anomaly_threshold: float = setting(0.99, "score at or above which an event is an anomaly")
    scoring_pipeline: ScoringPipelineName = setting(
        "detector",
        "detector: the forecast surprise lifted by each stream's envelope; seasonal: plus seasonal surprise, "
        "novelty and refractory (issue 6's NAB-tuned detector, single-value streams)",
    )
    warmup_events: int = setting(
        WARMUP_EVENTS,
        "a model without a calibration prior (trained before it existed): a new (or evicted) stream's forecast score "
        "is 0 for its first N surprises while its calibration learns",
    )
    prior_warmup_events: int = setting(
        PRIOR_WARMUP_EVENTS,
        "a model with the calibration prior rnnwatch train stores: a new (or evicted) stream's forecast score is 0 "
        "for its first N surprises (its statistics start at the prior)",
    )
    max_streams_per_partition: int = setting(100_000, "state rows per input partition (then: stream_table_full)")
    idle_ttl_seconds: float | None = setting(
        None, "evict streams idle longer than this (event time) at snapshots", shown="never"
    )
    snapshot_every: int = setting(100, "changelog delta records between full snapshots")
    restore_timeout_seconds: float = setting(300.0, "reading an assignment's changelog longer than this stops serve")
    shutdown_timeout_seconds: float = setting(
        30.0, "on SIGTERM/SIGINT, the batch in flight and the clients' close get this long, then are abandoned"
    )
    changelog_chunk_bytes: int = setting(512 * 1024, "size of one full-snapshot chunk in the changelog")
    max_message_bytes: int = setting(64 * 1024, "larger input messages are dead-lettered as oversized")
    max_key_bytes: int = setting(256, "longer stream keys are dead-lettered as key_too_long")
    archive_dir: str | None = setting(
        None, "archive consumed events here as rolling JSON Lines (for retraining)", shown="off"
    )
    archive_max_bytes: int = setting(64 * 1024 * 1024, "roll the archive file past this size")
    archive_max_age_seconds: float = setting(3600.0, "roll the archive file past this age")
    metrics_host: str = setting("0.0.0.0", "address of /metrics /healthz /readyz")
    metrics_port: int = setting(9108, "port of /metrics /healthz /readyz (0: any free)")
    status_log_seconds: float = setting(60.0, "one INFO status line this often (0: off)")
    security: SecurityConfig = field(default_factory=SecurityConfig)  # its own fields: security_* flags

    def __post_init__(self) -> None:
        for name in (
            "max_batch_size",
            "max_streams_per_partition",
            "snapshot_every",
            "changelog_chunk_bytes",
            "max_message_bytes",
            "max_key_bytes",
            "session_timeout_ms",
            "transaction_timeout_ms",
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
        if not 0 <= self.warmup_events <= 2000:
            raise ConfigError(
                f"warmup_events must be in [0, 2000] (the calibration's long window), got {self.warmup_events}"
            )
        if not 0 <= self.prior_warmup_events <= 2000 - PRIOR_EVENTS:
            raise ConfigError(
                f"prior_warmup_events must be in [0, {2000 - PRIOR_EVENTS}] (the calibration's long window less the "
                f"prior's {PRIOR_EVENTS} events), got {self.prior_warmup_events}"
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
