"""The training time budget's one flag, ``--train-minutes``, declared once for every command that trains.

`rnnwatch train`, `evaluate`, `demo` and `bench` once spelled it three ways (``--max-minutes``,
``--train-minutes``, ``--train-seconds``, the last in seconds). Each command now takes ``--train-minutes`` (parsed
into ``args.train_minutes``) and still accepts the two other spellings, hidden from ``--help``, in their own unit.
"""

from __future__ import annotations

import argparse
from typing import Any

OPTION = "--train-minutes"
OLD_NAMES = ("--max-minutes", "--train-seconds")  # earlier spellings: accepted, not shown


def _minutes_from_seconds(text: str) -> float:
    return float(text) / 60.0


_minutes_from_seconds.__name__ = "float"  # argparse names the type in its error: "invalid float value: 'x'"


def add_train_minutes_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: float | None,
                           what: str) -> None:  # fmt: skip
    """``--train-minutes MIN`` (``args.train_minutes``: ``default`` when absent), with ``what`` it limits in its
    help, plus the hidden ``--max-minutes`` (minutes) and ``--train-seconds`` (seconds)."""
    shown = "" if default is None else f" (default: {default:g})"
    parser.add_argument(
        OPTION, type=float, default=default, metavar="MIN", help=f"training time budget in minutes: {what}{shown}"
    )
    hidden: dict[str, Any] = {"dest": "train_minutes", "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
    parser.add_argument("--max-minutes", type=float, metavar="MIN", **hidden)
    parser.add_argument("--train-seconds", type=_minutes_from_seconds, metavar="SEC", **hidden)


def budget_problem(minutes: float | None) -> str | None:
    """Why ``--train-minutes`` cannot be used, or None."""
    if minutes is not None and not minutes > 0:
        return f"{OPTION} must be > 0 (got {minutes:g})"
    return None
