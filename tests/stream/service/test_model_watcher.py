"""The model watcher retries a refused artifact when it completes or when asked, and a swap is all or nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from rnncore.errors import ArtifactError
from rnncore.model.artifact import METADATA_FILE, WEIGHTS_FILE, save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.service.reload import ModelWatcher, swap_all

OLD = ModelWeights.random(ModelConfig(cell="gru", hidden_size=4), seed=1)
NEW = ModelWeights.random(ModelConfig(cell="gru", hidden_size=4), seed=2)


def _stage(tmp_path: Path, weights: ModelWeights, version: str) -> Path:
    staging = tmp_path / f"staging-{version}"
    save_artifact(staging, weights, {"version": version})
    return staging


def _copy(source: Path, target: Path, name: str) -> None:
    shutil.copyfile(source / name, target / f".{name}.tmp")
    os.replace(target / f".{name}.tmp", target / name)


def test_a_model_json_written_before_its_weights_is_loaded_once_the_weights_arrive(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    save_artifact(model_dir, OLD, {"version": "v1"})
    watcher = ModelWatcher(model_dir, poll_seconds=0)
    assert watcher.load_if_changed() is None  # the artifact it started with
    staging = _stage(tmp_path, NEW, "v2")
    _copy(staging, model_dir, METADATA_FILE)  # the new metadata, the old weights
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        watcher.load_if_changed()
    assert watcher.load_if_changed() is None  # not retried while nothing changed
    _copy(staging, model_dir, WEIGHTS_FILE)
    loaded = watcher.load_if_changed()
    assert loaded is not None and loaded.metadata["version"] == "v2"
    assert watcher.load_if_changed() is None


def test_a_refused_artifact_is_retried_on_request_but_not_on_every_poll(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    save_artifact(model_dir, OLD, {"version": "v1"})
    watcher = ModelWatcher(model_dir, poll_seconds=0)
    (model_dir / METADATA_FILE).write_text('{"format_version": 2}')
    with pytest.raises(ArtifactError, match="lacks"):
        watcher.load_if_changed()
    assert watcher.load_if_changed() is None
    watcher.request()  # SIGHUP
    assert watcher.due()
    with pytest.raises(ArtifactError, match="lacks"):
        watcher.load_if_changed()
    save_artifact(model_dir, NEW, {"version": "v2"})
    loaded = watcher.load_if_changed()
    assert loaded is not None and loaded.metadata["version"] == "v2"
    watcher.request()  # a loaded artifact is not loaded again on request
    assert watcher.load_if_changed() is None


def test_weights_refused_by_the_caller_are_retried_on_request(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    save_artifact(model_dir, OLD, {"version": "v1"})
    watcher = ModelWatcher(model_dir, poll_seconds=0)
    save_artifact(model_dir, NEW, {"version": "v2"})
    assert watcher.load_if_changed() is not None
    watcher.refused()  # e.g. it does not fit the state in use
    assert watcher.load_if_changed() is None
    watcher.request()
    assert watcher.load_if_changed() is not None


class _Detector:
    def __init__(self, refuse: Any = None) -> None:
        self.weights: Any = OLD
        self.refuse = refuse

    def reload(self, weights: Any) -> None:
        if weights is self.refuse:
            raise ValueError("refused")
        self.weights = weights


def test_a_swap_refused_by_any_detector_leaves_every_detector_on_the_old_model() -> None:
    detectors = [_Detector(), _Detector(), _Detector(refuse=NEW)]
    with pytest.raises(ValueError, match="refused"):
        swap_all(detectors, NEW, OLD)
    assert [d.weights for d in detectors] == [OLD, OLD, OLD]
    swap_all(detectors[:2], NEW, OLD)
    assert [d.weights for d in detectors[:2]] == [NEW, NEW]


def test_moving_a_stores_current_pointer_is_a_change_and_a_dangling_pointer_is_refused(tmp_path: Path) -> None:
    from rnncore.errors import ModelStoreError
    from rnncore.model.store import commit_version, incoming_dir, use_version

    store = tmp_path / "store"
    for weights, version in ((OLD, "v1"), (NEW, "v2")):
        incoming = incoming_dir(store)
        save_artifact(incoming, weights, {"version": version})
        commit_version(store, incoming, version)
    watcher = ModelWatcher(store, poll_seconds=0)
    assert watcher.load_if_changed() is None  # v2, what it started with
    use_version(store, "v1")  # a rollback
    loaded = watcher.load_if_changed()
    assert loaded is not None and loaded.metadata["version"] == "v1"
    assert watcher.load_if_changed() is None
    (store / "current").unlink()
    os.symlink("gone", store / "current")
    with pytest.raises(ModelStoreError, match="points at 'gone'"):
        watcher.load_if_changed()
    use_version(store, "v2")
    loaded = watcher.load_if_changed()
    assert loaded is not None and loaded.metadata["version"] == "v2"


def test_a_new_artifact_with_a_swapped_envelope_is_refused_before_any_swap(tmp_path: Path) -> None:
    """The envelope is inside the artifact's checksum: a hot reload whose envelope.npz is not the one its
    model.json records is refused by the loader, so the service never swaps (and keeps the old model)."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "envelope.npz").write_bytes(b"envelope of v1")
    save_artifact(model_dir, OLD, {"version": "v1"})
    watcher = ModelWatcher(model_dir, poll_seconds=0)
    assert watcher.load_if_changed() is None
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "envelope.npz").write_bytes(b"envelope of v2")
    save_artifact(staging, NEW, {"version": "v2"})
    _copy(staging, model_dir, WEIGHTS_FILE)
    (model_dir / "envelope.npz").write_bytes(b"envelope of v2, cut")  # truncated or swapped in transit
    _copy(staging, model_dir, METADATA_FILE)
    with pytest.raises(ArtifactError, match="envelope.npz is corrupt, truncated or from another artifact"):
        watcher.load_if_changed()
    _copy(staging, model_dir, "envelope.npz")  # the right one arrives: the artifact is complete
    watcher.request()
    loaded = watcher.load_if_changed()
    assert loaded is not None and loaded.metadata["version"] == "v2"
