"""Hot model reload: notice a new artifact in the model directory and load it between batches.

``save_artifact`` writes the weights first and renames ``model.json`` last, so a changed ``model.json``
(mtime, size or inode) means a complete new artifact. A file that fails to load is remembered and not retried
until it changes again, so a broken upload costs one log line, not one per poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rnncore.model.artifact import METADATA_FILE, load_artifact
from rnncore.model.bidirectional import ensure_causal
from rnncore.model.weights import ModelWeights

Signature = tuple[int, int, int] | None


def _signature(path: Path) -> Signature:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class ModelWatcher:
    """Polls ``model_dir/model.json`` every ``poll_seconds`` (0: never by itself) or when asked to."""

    def __init__(self, model_dir: str | Path, poll_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.model_dir = Path(model_dir)
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._seen = _signature(self.model_dir / METADATA_FILE)  # the artifact the service started with
        self._next_poll = clock() + poll_seconds
        self._requested = False

    def request(self) -> None:
        """Check at the next opportunity (SIGHUP), whatever the poll interval."""
        self._requested = True

    def due(self) -> bool:
        """Whether a check is asked for or the poll interval has passed."""
        return self._requested or (self.poll_seconds > 0 and self._clock() >= self._next_poll)

    def load_if_changed(self) -> ModelWeights | None:
        """The new artifact's weights if ``model.json`` changed since the last check, else None.

        Raises ``rnncore.model.artifact.ArtifactError`` for an unreadable artifact (and will not retry that version)."""
        self._requested = False
        self._next_poll = self._clock() + self.poll_seconds
        current = _signature(self.model_dir / METADATA_FILE)
        if current is None or current == self._seen:
            return None
        self._seen = current
        weights = load_artifact(self.model_dir)
        ensure_causal(weights.config, f"rnnwatch serve (model reload from {self.model_dir})")  # an ArtifactError
        return weights
