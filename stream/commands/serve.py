"""`rnnwatch serve`: run the streaming anomaly-detection service until SIGTERM / SIGINT.

Settings come from --config (TOML), RNNWATCH_* env vars and the flags below (flags win); the model from
--model-dir (an artifact directory; SIGHUP or a poll loads a new artifact there without losing state).
Exit codes: 0 clean stop (also a SIGTERM during a broker outage: within shutdown_timeout_seconds, the batch in
flight abandoned uncommitted), 1 service failure, 2 bad config/model.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

logger = logging.getLogger(__name__)

# flag name -> ServiceConfig field (all optional: absent means "take env / file / default")
_FLAGS: dict[str, tuple[type, str]] = {
    "bootstrap_servers": (str, "Kafka bootstrap servers host:port[,host:port]"),
    "input_topic": (str, "topic of input events"),
    "output_topic": (str, "topic of score records"),
    "dead_letter_topic": (str, "topic of rejected messages"),
    "changelog_topic": (str, "compacted topic holding per-partition state"),
    "group_id": (str, "consumer group"),
    "instance_id": (str, "replica name (transactional ids are per input partition); default the hostname"),
    "model_dir": (str, "model artifact directory (a new artifact there is loaded without losing state)"),
    "model_poll_seconds": (float, "how often to check model_dir for a new artifact (0: only on SIGHUP)"),
    "archive_dir": (str, "archive consumed events here as rolling JSON Lines for retraining"),
    "max_batch_size": (int, "max events per micro-batch"),
    "max_batch_wait_ms": (int, "max wait for a micro-batch to fill"),
    "anomaly_threshold": (float, "score at or above which an event is an anomaly"),
    "max_streams_per_partition": (int, "state rows per input partition"),
    "snapshot_every": (int, "changelog delta records between full snapshots"),
    "metrics_host": (str, "address of /metrics /healthz /readyz"),
    "metrics_port": (int, "port of /metrics /healthz /readyz (0 = any free)"),
    "idle_ttl_seconds": (float, "evict streams idle longer than this (event time) at snapshots"),
    "warmup_events": (int, "a new stream's forecast score is 0 for its first N events (calibration warm-up)"),
    "session_timeout_ms": (int, "how long a silent replica keeps its partitions"),
    "max_message_bytes": (int, "larger input messages are dead-lettered as oversized"),
    "max_key_bytes": (int, "longer stream keys are dead-lettered as key_too_long"),
    "changelog_chunk_bytes": (int, "size of one full-snapshot chunk in the changelog"),
    "archive_max_bytes": (int, "roll the archive file past this size"),
    "archive_max_age_seconds": (float, "roll the archive file past this age"),
    "status_log_seconds": (float, "one INFO status line this often (0: off)"),
    "shutdown_timeout_seconds": (float, "on SIGTERM, abandon the batch in flight and close the clients after this"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="TOML config file")
    for name, (kind, help_text) in _FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None, help=help_text)
    parser.add_argument("--guarantee", choices=["exactly_once", "at_least_once"], default=None)
    parser.add_argument("--publish", choices=["all", "anomalies"], default=None, help="which score records to send")
    parser.add_argument(
        "--scoring-pipeline",
        choices=["detector", "seasonal"],
        default=None,
        help="detector: the forecast surprise; seasonal: plus seasonal surprise, novelty, refractory (NAB's detector)",
    )
    parser.add_argument(
        "--auto-offset-reset",
        choices=["earliest", "latest"],
        default=None,
        help="where a group without committed offsets starts (default earliest)",
    )
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="json = structured logs")


def run(args: argparse.Namespace) -> int:
    """Load config and model, then serve until a signal; returns the exit code."""
    from rnncore.errors import RnnCoreError
    from rnncore.model.artifact import load_artifact
    from rnncore.model.bidirectional import ensure_causal
    from stream.errors import ConfigError
    from stream.service.config import load_config
    from stream.service.logs import configure_logging

    configure_logging(getattr(args, "log_level", "INFO"), json_format=args.log_format == "json")
    choices = ("guarantee", "publish", "scoring_pipeline", "auto_offset_reset")
    overrides: dict[str, Any] = {name: getattr(args, name) for name in (*_FLAGS, *choices)}
    try:
        config = load_config(args.config, overrides=overrides)
        if not config.model_dir:
            raise ConfigError("no model: pass --model-dir or set RNNWATCH_MODEL_DIR / model_dir in the config file")
        weights = load_artifact(config.model_dir)
        ensure_causal(weights.config, f"rnnwatch serve (model_dir {config.model_dir})")
    except (ConfigError, RnnCoreError) as error:
        logger.error("cannot start: %s", error)
        return 2
    logger.info("starting with config %r", config)
    return asyncio.run(_serve(config, weights))


async def _serve(config: Any, weights: Any) -> int:
    from stream.errors import ServiceError
    from stream.service.app import Service

    try:
        service = Service(config, weights, serve_http=True)
    except ServiceError as error:
        logger.error("cannot start: %s", error)
        return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    loop.add_signal_handler(signal.SIGHUP, service.request_reload)
    try:
        async with service:
            await service.run()
    except ServiceError as error:
        logger.error("service failed: %s", error)
        return 1
    logger.info("stopped cleanly")
    return 0
