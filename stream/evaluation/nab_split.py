"""The TUNE / REPORT halves of the NAB corpus: constants are chosen on TUNE files only, REPORT files are only
reported. A file's half is fixed by its name (relative to ``data/``): the SHA-1 of the name, even = TUNE."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from stream.errors import EvaluationError

Split = Literal["tune", "report", "all"]
SPLITS: tuple[Split, ...] = ("tune", "report", "all")


def file_split(name: str) -> Literal["tune", "report"]:
    """``"tune"`` when the SHA-1 of the file's name (``realKnownCause/nyc_taxi.csv``) is even, else ``"report"``."""
    return "tune" if int(hashlib.sha1(name.encode()).hexdigest(), 16) % 2 == 0 else "report"


def in_split(names: Sequence[str], split: str) -> list[str]:
    """The names of ``split`` (``all``: every name), in their given order."""
    if split not in SPLITS:
        raise EvaluationError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return [n for n in names if split == "all" or file_split(n) == split]
