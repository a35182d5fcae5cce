"""The `rnnwatch` command line: one sub-command per module in `stream.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

# Sub-command name -> module in stream.commands. Each module defines
# `add_arguments(parser)` and `run(args) -> int`, and imports heavy packages (torch) only inside run().
COMMANDS: dict[str, str] = {
    "broker": "Start, stop or inspect the local development Kafka broker",
    "serve": "Run the streaming anomaly-detection service against Kafka",
    "topics": "Create the topics `rnnwatch serve` reads and writes (changelog compacted)",
    "train": "Train a model offline by BPTT from event logs (needs the train extra: torch)",
    "score": "Score an event log offline through the same online path as the service",
    "evaluate": "Score your own labelled CSV files the way the service would and report F1, false alarms, delay",
    "model": "List a model directory's versions, or point its `current` at one (rollback)",
    "send": "Publish events to the service's input topic, from event logs or a synthetic fleet",
    "tail": "Print the service's score records (read_committed) as JSON Lines",
    "bench": "Benchmarks that ship with rnnwatch (e.g. `rnnwatch bench nab`)",
    "demo": "Local broker + synthetic sensor fleet + service, with live progress",
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none to show (None, off switches) or help says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return text
        return super()._get_help_string(action)


class OneLineErrorParser(argparse.ArgumentParser):
    """A usage error is one line: what is wrong and where to look, not the whole usage block above it.

    Sub-command parsers inherit the class (``add_subparsers`` builds them with the parent's type). No
    abbreviations: with ``--model-dir`` and ``--security-sasl-password-file`` around, a prefix that happens to be
    unique (``--model``, ``--security-sasl-password``) would silently mean a flag the user did not type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (`{self.prog} --help` lists every flag)\n")


def _version() -> str:
    """The installed distribution's version (a checkout without `pip install -e .` says so)."""
    try:
        return metadata.version("rnnwatch")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    """Parser with every available sub-command; a command whose module is absent is not offered."""
    parser = OneLineErrorParser(
        prog="rnnwatch",
        description="Streaming anomaly detection with RNNs.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rnnwatch {_version()}")
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help="logging level", metavar="LEVEL"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        try:
            module = importlib.import_module(f"stream.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"stream.commands.{name}":
                continue
            raise
        command_parser = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=DefaultsHelpFormatter
        )
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rnnwatch` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
