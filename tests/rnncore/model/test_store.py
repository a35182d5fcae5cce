"""The versioned model store: immutable version directories, an atomic ``current`` pointer, plain artifacts adopted."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rnncore.errors import ModelStoreError
from rnncore.model.artifact import METADATA_FILE, WEIGHTS_FILE, load_artifact, read_metadata, save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.store import (
    commit_version,
    current_version,
    incoming_dir,
    is_store,
    list_versions,
    resolve_model_dir,
    use_version,
)
from rnncore.model.weights import ModelWeights

CONFIG = ModelConfig(cell="gru", hidden_size=4)


def _commit(store: Path, version: str, seed: int, *, make_current: bool = True) -> Path:
    incoming = incoming_dir(store)
    save_artifact(incoming, ModelWeights.random(CONFIG, seed=seed), {"version": version})
    return commit_version(store, incoming, version, make_current=make_current)


def test_a_plain_artifact_directory_is_read_as_before(tmp_path: Path) -> None:
    save_artifact(tmp_path / "plain", ModelWeights.random(CONFIG, seed=0), {"version": "p"})
    assert not is_store(tmp_path / "plain") and resolve_model_dir(tmp_path / "plain") == tmp_path / "plain"
    assert current_version(tmp_path / "plain") is None
    assert load_artifact(tmp_path / "plain").metadata["version"] == "p"


def test_each_commit_is_a_new_version_and_current_is_a_relative_symlink(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _commit(store, "v1", 1)
    _commit(store, "v2", 2)
    assert os.readlink(store / "current") == "v2"  # relative: the store can be moved or mounted elsewhere
    assert read_metadata(store)["version"] == "v2" and current_version(store) == "v2"
    assert [(v.name, v.current) for v in list_versions(store)] == [("v1", False), ("v2", True)]
    assert not [p for p in store.iterdir() if p.name.startswith(".")]  # no incoming or temporary pointer left
    _commit(store, "v3", 3, make_current=False)
    assert current_version(store) == "v2"
    use_version(store, "v1")
    assert load_artifact(store).metadata["version"] == "v1"


def test_a_version_is_never_overwritten_and_bad_names_are_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _commit(store, "v1", 1)
    with pytest.raises(ModelStoreError, match="never overwritten"):
        _commit(store, "v1", 2)
    for bad in ("current", "../escape", ".hidden", "", "a/b"):
        with pytest.raises(ModelStoreError, match="cannot name a version"):
            use_version(store, bad)
    with pytest.raises(ModelStoreError, match="has no version 'v9'"):
        use_version(store, "v9")
    assert load_artifact(store).metadata["version"] == "v1"


def test_a_plain_artifact_is_adopted_as_the_stores_first_version(tmp_path: Path) -> None:
    store = tmp_path / "live"
    save_artifact(store, ModelWeights.random(CONFIG, seed=0), {"version": "served"})
    weights_inode = (store / WEIGHTS_FILE).stat().st_ino
    _commit(store, "next", 1)
    assert sorted(p.name for p in store.iterdir()) == ["current", "next", "served"]
    assert (store / "served" / WEIGHTS_FILE).stat().st_ino == weights_inode  # moved, not rewritten
    assert load_artifact(store / "served").metadata["version"] == "served"
    assert current_version(store) == "next"


def test_a_dangling_pointer_names_the_missing_version_and_how_to_fix_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _commit(store, "v1", 1)
    (store / "current").unlink()
    os.symlink("v0", store / "current")
    with pytest.raises(ModelStoreError, match=r"points at 'v0'.*rnnwatch model use"):
        load_artifact(store)
    assert (store / "v1" / METADATA_FILE).is_file()


def test_a_stores_current_envelope_is_checked_against_its_own_model_json(tmp_path: Path) -> None:
    from rnncore.errors import EnvelopeError
    from rnncore.model.envelope_file import load_envelope, save_envelope
    from rnncore.stages.envelope import EnvelopeParams, fit_envelope
    from stream.data.eventlog import EventRecord

    rng = np.random.default_rng(0)
    records = [EventRecord("a", float(i), (float(v),)) for i, v in enumerate(rng.normal(size=800))]
    envelope = fit_envelope(records, EnvelopeParams(min_history=0))
    store = tmp_path / "store"
    incoming = incoming_dir(store)
    save_envelope(envelope, incoming)
    save_artifact(incoming, ModelWeights.random(CONFIG, seed=0), {"version": "v1"})
    commit_version(store, incoming, "v1")
    assert load_envelope(store) is not None
    (store / "v1" / "envelope.npz").write_bytes((store / "v1" / "envelope.npz").read_bytes()[:-10])
    with pytest.raises(EnvelopeError, match="not the envelope model.json records"):
        load_envelope(store)
