"""A small real `rnnwatch train` for the command tests that need a trained artifact (one epoch, H=8, at most
2,000 event-steps, no validation floor)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from stream.cli import main

SMALL = [
    "--min-validation-steps",
    "0",
    "--no-progress",
    "--epochs",
    "1",
    "--hidden-size",
    "8",
    "--max-event-steps",
    "2000",
]


def train_small(out: Path, streams: int, events: int, capsys: pytest.CaptureFixture[str]) -> str:
    """`rnnwatch train --synthetic <streams> --synthetic-events <events> --out <out>` on :data:`SMALL`'s budget;
    fails unless it exits 0, and returns what it printed."""
    argv = ["train", "--synthetic", str(streams), "--synthetic-events", str(events), "--out", str(out), *SMALL]
    assert main(argv) == 0
    return capsys.readouterr().out


@dataclass(frozen=True)
class SmallStore:
    """A model store ``out`` that :func:`train_small` trains into, what it prints read from ``capsys``."""

    out: Path
    capsys: pytest.CaptureFixture[str]

    def train(self, streams: int, events: int) -> str:
        """:func:`train_small` into :attr:`out`; returns what it printed."""
        return train_small(self.out, streams, events, self.capsys)
