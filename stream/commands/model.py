"""`rnnwatch model list DIR` and `rnnwatch model use DIR VERSION`: the versions of a model store and its pointer.

`rnnwatch train --out DIR` writes each model into ``DIR/<version>/`` and points ``DIR/current`` at it
(``rnncore.model.store``). ``use`` moves the pointer (a rollback or a roll forward); a service serving DIR takes
the pointed version at its next poll or on SIGHUP, as it takes a new training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnncore.errors import RnnCoreError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: the action, the store and, for ``use``, the version."""
    parser.add_argument("action", choices=["list", "use"], help="list the versions, or point current at one")
    parser.add_argument("model_dir", type=Path, help="the model directory (rnnwatch train --out)")
    parser.add_argument("version", nargs="?", help="use: the version to make current")
    parser.add_argument(
        "--replace-incompatible",
        action="store_true",
        help="use: point current at a model whose state layout differs (a service on it could not restore)",
    )


def _describe(path: Path) -> str:
    """Architecture, creation time and validation loss of one version, or why it cannot be read."""
    from rnncore.model.artifact import read_metadata

    try:
        doc = read_metadata(path)
    except RnnCoreError as exc:
        return f"unreadable: {exc}"
    arch = doc["architecture"]
    loss = doc.get("validation_loss")
    loss_text = "n/a" if loss is None else f"{loss:.4f}"
    return (
        f"{arch['cell']} H={arch['hidden_size']} L={arch['num_layers']} F={arch['n_features']}  "
        f"created {doc['created_at'][:19]}  validation NLL {loss_text}"
    )


def _list(model_dir: Path) -> int:
    from rnncore.model.store import is_store, list_versions

    if not is_store(model_dir):
        from rnncore.model.artifact import read_metadata

        read_metadata(model_dir)  # neither a store nor an artifact: its error says what is missing
        print(f"{model_dir} is a plain artifact (no versions): {_describe(model_dir)}")
        return 0
    for version in list_versions(model_dir):
        print(f"{'*' if version.current else ' '} {version.name}  {_describe(version.path)}")
    return 0


def _use(args: argparse.Namespace) -> int:
    from rnncore.errors import ModelStoreError
    from rnncore.model.artifact import load_artifact
    from rnncore.model.store import current_version, use_version, version_dir

    candidate = load_artifact(version_dir(args.model_dir, args.version)).config
    try:
        serving = load_artifact(args.model_dir).config
    except ModelStoreError:
        serving = None  # a dangling pointer: anything readable is better
    if serving is not None and not serving.same_state_layout(candidate) and not args.replace_incompatible:
        print(
            f"rnnwatch model use: {args.version} is {candidate.cell} H={candidate.hidden_size} "
            f"L={candidate.num_layers} F={candidate.n_features}, the current model {serving.cell} "
            f"H={serving.hidden_size} L={serving.num_layers} F={serving.n_features}: a service on "
            f"{args.model_dir} would refuse it and could not restore its state after a restart; pass "
            "--replace-incompatible to move the pointer anyway",
            file=sys.stderr,
        )
        return 2
    before = current_version(args.model_dir)
    use_version(args.model_dir, args.version)
    print(f"{args.model_dir}/current -> {args.version} (was {before})")
    return 0


def run(args: argparse.Namespace) -> int:
    """List or move the pointer; 2 with a one-line message when the store or version cannot be used."""
    from stream.commands.model_path import ensure_model_dir

    if args.action == "use" and not args.version:
        print("rnnwatch model use: give the VERSION to make current (rnnwatch model list DIR shows them)",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.action == "list" and args.version:
        print(f"rnnwatch model list: takes only the model directory, not {args.version!r}", file=sys.stderr)
        return 2
    try:
        ensure_model_dir(args.model_dir, "model directory")
        return _list(args.model_dir) if args.action == "list" else _use(args)
    except (RnnCoreError, OSError) as exc:
        print(f"rnnwatch model {args.action}: {exc}", file=sys.stderr)
        return 2
