"""Fixtures of the service's fault tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.local_broker import LocalBroker


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker this test may stop and resume (the session's broker is shared)."""
    broker = LocalBroker(run_dir=tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
