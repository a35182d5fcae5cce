"""A versioned model directory: ``model_dir/<version>/`` (one immutable artifact each) and a ``current`` pointer.

``rnnwatch train --out model_dir`` writes each new model into its own version directory and then moves the
``current`` symlink to it with one atomic rename, so the version a service is serving is never overwritten, a
reader that resolves ``current`` always sees one whole artifact, and a rollback is moving the pointer back
(``rnnwatch model use``). Every loader (``load_artifact``, ``load_envelope``, the service's watcher) resolves a
store to its current version; a plain artifact directory (``model.json`` at the top, written before stores)
is read as before.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from rnncore.errors import ModelStoreError

__all__ = [
    "CURRENT",
    "StoredVersion",
    "commit_version",
    "current_version",
    "incoming_dir",
    "is_store",
    "list_versions",
    "resolve_model_dir",
    "use_version",
    "version_dir",
]

CURRENT = "current"
_METADATA = "model.json"  # rnncore.model.artifact.METADATA_FILE (not imported: artifact imports this module)
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class StoredVersion:
    """One version directory of a store and whether ``current`` points at it."""

    name: str
    path: Path
    current: bool


def is_store(directory: str | Path) -> bool:
    """Whether ``directory`` is a versioned store (has a ``current`` pointer), not a plain artifact directory."""
    return os.path.lexists(Path(directory) / CURRENT)


def resolve_model_dir(directory: str | Path) -> Path:
    """The artifact directory to read: ``directory/<version>`` of its ``current`` pointer, or ``directory`` itself
    when it is a plain artifact (or does not exist: the loader's own error then names it)."""
    directory = Path(directory)
    pointer = directory / CURRENT
    if not os.path.lexists(pointer):
        return directory
    target = directory / os.readlink(pointer) if pointer.is_symlink() else pointer
    if not (target / _METADATA).is_file():
        raise ModelStoreError(
            f"{pointer} points at {target.name!r}, which holds no {_METADATA}: point it at a version that exists "
            f"(rnnwatch model list {directory}; rnnwatch model use {directory} VERSION)"
        )
    return target


def current_version(directory: str | Path) -> str | None:
    """The name of the version ``current`` points at, or None for a plain artifact directory."""
    return resolve_model_dir(directory).name if is_store(directory) else None


def list_versions(directory: str | Path) -> list[StoredVersion]:
    """Every version directory of a store (those holding a ``model.json``), oldest first by modification time."""
    directory = Path(directory)
    current = current_version(directory)
    found = [
        p
        for p in directory.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".") and (p / _METADATA).is_file()
    ]
    found.sort(key=lambda p: ((p / _METADATA).stat().st_mtime_ns, p.name))
    return [StoredVersion(p.name, p, p.name == current) for p in found]


def incoming_dir(directory: str | Path) -> Path:
    """A fresh hidden directory inside the store to write a new artifact into before it gets its version name."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    incoming = directory / f".incoming-{os.getpid()}"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir()
    return incoming


def commit_version(directory: str | Path, incoming: Path, version: str, *, make_current: bool = True) -> Path:
    """Rename ``incoming`` to ``directory/<version>`` and, with ``make_current``, point ``current`` at it.

    A plain artifact already in ``directory`` (``model.json`` at the top) is first moved into its own version
    directory and made current, so the model a service was serving stays on disk and stays the rollback target.
    """
    directory = Path(directory)
    _check_name(version)
    _adopt_plain_artifact(directory)
    target = directory / version
    if os.path.lexists(target):
        raise ModelStoreError(f"{target} exists: versions are never overwritten; give another --model-version")
    os.replace(incoming, target)
    if make_current or not is_store(directory):
        _point(directory, version)
    return target


def version_dir(directory: str | Path, version: str) -> Path:
    """The directory of an existing version of the store; ModelStoreError listing the versions when it has none."""
    directory = Path(directory)
    _check_name(version)
    target = directory / version
    if not (target / _METADATA).is_file():
        names = ", ".join(v.name for v in list_versions(directory)) if directory.is_dir() else ""
        raise ModelStoreError(f"{directory} has no version {version!r} (versions: {names or 'none'})")
    return target


def use_version(directory: str | Path, version: str) -> Path:
    """Point ``current`` at an existing version (a rollback or a roll forward); returns its directory."""
    target = version_dir(directory, version)
    _point(Path(directory), version)
    return target


def _check_name(version: str) -> None:
    if version == CURRENT or not _VERSION_NAME.match(version):
        raise ModelStoreError(
            f"{version!r} cannot name a version directory: use letters, digits, '.', '_' or '-' (at most 128, "
            f"not starting with '.' or '-', not {CURRENT!r})"
        )


def _point(directory: Path, version: str) -> None:
    """Move ``current`` to ``version`` atomically: a new relative symlink renamed over the old one."""
    tmp = directory / f".{CURRENT}.tmp-{os.getpid()}"
    if os.path.lexists(tmp):
        tmp.unlink()
    os.symlink(version, tmp)
    os.replace(tmp, directory / CURRENT)


def _adopt_plain_artifact(directory: Path) -> None:
    """Turn a plain artifact directory into a store whose one version is that artifact."""
    if is_store(directory) or not (directory / _METADATA).is_file():
        return
    import json

    try:
        version = str(json.loads((directory / _METADATA).read_text(encoding="utf-8")).get("version", "")) or "legacy"
    except (OSError, ValueError):
        version = "legacy"
    if not _VERSION_NAME.match(version) or version == CURRENT:
        version = "legacy"
    target = directory / version
    if os.path.lexists(target):
        target = directory / "legacy"
    target.mkdir()
    files = [e for e in directory.iterdir() if e.is_file() and not e.is_symlink() and not e.name.startswith(".")]
    for entry in files:  # hard links first: a reader sees the plain artifact or the pointed version, both whole
        os.link(entry, target / entry.name)
    _point(directory, target.name)
    for entry in files:
        entry.unlink()
