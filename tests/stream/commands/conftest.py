"""Fixtures of the command tests: a model store that small real trainings write into."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stream.commands.small_training import SmallStore


@pytest.fixture
def small_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> SmallStore:
    """The store tmp_path/model, for :meth:`SmallStore.train` (a small real `rnnwatch train`) to write into."""
    return SmallStore(tmp_path / "model", capsys)
