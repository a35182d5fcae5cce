"""Parsed flags handed on under their own names: ``--hidden-size 8`` is ``hidden_size=8`` of a settings object."""

from __future__ import annotations

import argparse
from typing import Any


def same_named(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """``{name: args.<name>}`` for each of ``names``: the keyword arguments of settings whose fields are called as
    the flags' destinations are (the others, renamed or derived, are given beside them)."""
    return {name: getattr(args, name) for name in names}
