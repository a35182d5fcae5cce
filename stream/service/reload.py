"""Hot model reload: notice a new artifact in the model directory and load it between batches.

``save_artifact`` writes the weights first and renames ``model.json`` last, but a copy tool or an operator may
write them in any order: the watcher looks at both files (mtime, size and inode of each), and an artifact is
loaded, schema- and checksum-checked whole (``rnncore.artifact.load_artifact``), only when either changed, from
one resolution of a store's ``current`` pointer (``loaded_from``: the service reads the envelope there too). A
refused artifact is not retried on every poll (a broken upload costs one log line), but it is retried as soon
as either file changes again (``model.json`` written before its weights: refused, then loaded once the weights
arrive) and on every explicit request (SIGHUP).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from rnncore.errors import ModelStoreError
from rnncore.model.artifact import METADATA_FILE, WEIGHTS_FILE, load_artifact
from rnncore.model.bidirectional import ensure_causal
from rnncore.model.store import resolve_model_dir
from rnncore.model.weights import ModelWeights

FileSignature = tuple[int, int, int] | None
Signature = tuple[FileSignature, FileSignature]


def _file_signature(path: Path) -> FileSignature:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _signature(directory: Path) -> Signature:
    """The two files' signatures, at a versioned store's ``current`` version (a moved pointer changes the inodes)."""
    try:
        directory = resolve_model_dir(directory)
    except ModelStoreError:
        return ((-1, -1, -1), None)  # a dangling pointer: a change, and load_artifact says what is wrong
    return _files_signature(directory)


def _files_signature(artifact: Path) -> Signature:
    """The two files' signatures in one artifact directory (a store's version, or a plain directory)."""
    return (_file_signature(artifact / METADATA_FILE), _file_signature(artifact / WEIGHTS_FILE))


class ModelWatcher:
    """Polls ``model_dir`` every ``poll_seconds`` (0: never by itself) or when asked to.

    ``serving`` is the artifact directory the service started with (a store's version, resolved when its weights
    were read): a pointer that moved after that read is a change to load, not the starting point."""

    def __init__(
        self,
        model_dir: str | Path,
        poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        serving: Path | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._seen = _files_signature(serving) if serving is not None else _signature(self.model_dir)
        self._failed = False  # whether the artifact at ``_seen`` was refused
        self._next_poll = clock() + poll_seconds
        self._requested = False
        self.loaded_from: Path | None = serving  # the artifact directory (a store's version) of the weights in use

    def request(self) -> None:
        """Check at the next opportunity (SIGHUP), whatever the poll interval; a refused artifact is retried."""
        self._requested = True

    def due(self) -> bool:
        """Whether a check is asked for or the poll interval has passed."""
        return self._requested or (self.poll_seconds > 0 and self._clock() >= self._next_poll)

    def refused(self) -> None:
        """The caller refused the weights last returned (they do not fit the state in use): retry only on a change
        or a request."""
        self._failed = True

    def load_if_changed(self) -> ModelWeights | None:
        """The new artifact's weights if either file changed since the last check (or a refused one was asked for
        again), else None.

        Raises ``rnncore.artifact.ArtifactError`` for an unreadable artifact (retried when a file changes)."""
        retry = self._requested and self._failed
        self._requested = False
        self._next_poll = self._clock() + self.poll_seconds
        current = _signature(self.model_dir)
        if current[0] is None or (current == self._seen and not retry):
            return None
        self._seen, self._failed = current, True  # until it has loaded
        directory = resolve_model_dir(self.model_dir)  # once: the envelope is read from this version too
        weights = load_artifact(directory)
        ensure_causal(weights.config, f"rnnwatch serve (model reload from {self.model_dir})")  # an ArtifactError
        self._failed = False
        self.loaded_from = directory
        return weights


class _Reloadable(Protocol):
    def reload(self, weights: Any) -> None: ...


def swap_all(detectors: Sequence[_Reloadable], weights: ModelWeights, previous: ModelWeights | None) -> None:
    """Give every detector the new weights, or none of them: after a refusal by any detector, the ones already
    swapped get ``previous`` back (weights they ran before, so that cannot fail), and the refusal is raised."""
    swapped: list[_Reloadable] = []
    try:
        for detector in detectors:
            detector.reload(weights)
            swapped.append(detector)
    except Exception:
        if previous is not None:
            for detector in swapped:
                detector.reload(previous)
        raise
