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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, one flag per setting (``stream.commands.config_flags``) and the log format."""
    from stream.commands.config_flags import add_config_flags

    add_config_flags(parser)
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="json = structured logs")


def run(args: argparse.Namespace) -> int:
    """Load config and model, then serve until a signal; returns the exit code."""
    from rnncore.errors import RnnCoreError
    from rnncore.model.artifact import load_artifact
    from rnncore.model.bidirectional import ensure_causal
    from stream.commands.config_flags import config_overrides
    from stream.commands.model_path import ensure_model_dir
    from stream.errors import ConfigError
    from stream.service.config import load_config
    from stream.service.logs import configure_logging

    configure_logging(getattr(args, "log_level", "INFO"), json_format=args.log_format == "json")
    try:
        config = load_config(args.config, overrides=config_overrides(args))
        if not config.model_dir:
            raise ConfigError("no model: pass --model-dir or set RNNWATCH_MODEL_DIR / model_dir in the config file")
        ensure_model_dir(config.model_dir, "model_dir")
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
