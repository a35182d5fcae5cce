"""One line for a model directory that cannot hold a model, with the command that makes one (score, serve, model)."""

from __future__ import annotations

from pathlib import Path


def model_dir_problem(path: str | Path, name: str) -> str | None:
    """Why ``path`` (given as ``name``: a flag or a setting) holds no model, with the way to make one, or None
    when it may (its artifact is then checked by ``load_artifact``, whose errors name what is wrong inside)."""
    from rnncore.model.store import CURRENT

    path = Path(path)
    train = f"`rnnwatch train --synthetic 20 --out {path}` (or --logs YOUR-LOGS) writes one there"
    if not path.exists():
        return f"{name} {path} does not exist: {train}"
    if not path.is_dir():
        return f"{name} {path} is a file, not a model directory: give the directory `rnnwatch train --out` wrote"
    pointer = path / CURRENT
    if not (path / "model.json").exists() and not (pointer.exists() or pointer.is_symlink()):  # dangling: rollback
        return f"{name} {path} holds no model (no model.json, no {CURRENT} version): {train}"
    return None


def ensure_model_dir(path: str | Path, name: str) -> None:
    """Raise :class:`~rnncore.errors.ArtifactError` with :func:`model_dir_problem`'s line when ``path`` holds no
    model: the commands report it as they report a broken artifact."""
    from rnncore.errors import ArtifactError

    problem = model_dir_problem(path, name)
    if problem:
        raise ArtifactError(problem)
