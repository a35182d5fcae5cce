"""The model-store reload race: weights and envelope come from one version even while ``current`` moves.

A reload read the weights at the version ``current`` named, then the envelope from ``model_dir`` again: a pointer
moved in between (``rnnwatch train`` committing a new version, ``rnnwatch model use`` rolling back) gave the
partitions the weights of one version with the envelope of another, each valid on its own. Now the watcher resolves
the pointer once (``ModelWatcher.loaded_from``) and the service reads the envelope from that version; a start whose
weights were loaded before the pointer moved is refused with the reason instead of mixing them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnncore.model.artifact import load_artifact, save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.envelope_file import load_envelope, save_envelope
from rnncore.model.store import commit_version, incoming_dir, use_version
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import Envelope, fit_envelope
from rnncore.stages.enveloped import EnvelopedDetector
from stream.data.eventlog import EventRecord
from stream.errors import ArtifactMovedError
from stream.service import reload
from stream.service.app import Service, detector_factory
from stream.service.config import ServiceConfig
from tests.kafka_helpers import run_sync

CONFIG = ModelConfig(cell="gru", n_features=2, hidden_size=8)


def _records(level: float) -> list[EventRecord]:
    rng = np.random.default_rng(int(level))
    factor = np.sin(2 * np.pi * np.arange(600) / 40.0)
    rows = np.stack([factor, 0.8 * factor + level], axis=1) + rng.normal(0, 0.1, (600, 2))
    return [EventRecord("rig-0", float(t), tuple(r)) for t, r in enumerate(rows.tolist())]


def _store(tmp_path: Path) -> Path:
    """A store with versions v1, v2, v3: different weights and envelopes; ``current`` at v1."""
    store = tmp_path / "store"
    for seed, version in enumerate(("v1", "v2", "v3")):
        incoming = incoming_dir(store)
        save_envelope(fit_envelope(_records(float(seed))), incoming)  # first: model.json's checksum covers it
        save_artifact(incoming, ModelWeights.random(CONFIG, seed=seed), {"version": version})
        commit_version(store, incoming, version, make_current=version == "v1")
    return store


def _envelope(directory: Path) -> Envelope:
    envelope = load_envelope(directory)
    assert envelope is not None
    return envelope


def _same(a: Envelope, b: Envelope) -> bool:
    return bool(np.array_equal(a.mu, b.mu) and np.array_equal(a.icov, b.icov))


def test_a_reload_takes_the_envelope_of_the_version_its_weights_came_from_while_current_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    assert not _same(_envelope(store / "v2"), _envelope(store / "v3"))
    service = Service(ServiceConfig(model_dir=str(store), model_poll_seconds=0.0), load_artifact(store))
    real_load = reload.load_artifact

    def load_then_move(directory: Path) -> ModelWeights:  # the pointer moves right after the weights are read
        weights = real_load(directory)
        use_version(store, "v3")
        return weights

    monkeypatch.setattr(reload, "load_artifact", load_then_move)
    use_version(store, "v2")
    service.request_reload()
    run_sync(service._maybe_reload())
    assert service.weights is not None and service.weights.metadata["version"] == "v2"
    fresh = service._make_detector()  # what a partition assigned from now on is built with
    assert isinstance(fresh, EnvelopedDetector)
    assert _same(fresh.envelope, _envelope(store / "v2"))
    assert service.metrics.value("rnnwatch_model_reloads_total", {"result": "loaded"}) == 1


def test_a_start_with_weights_of_another_version_than_current_is_refused_with_the_reason(tmp_path: Path) -> None:
    store = _store(tmp_path)
    weights = load_artifact(store)  # v1, as `rnnwatch serve` loads it before building the service
    use_version(store, "v2")  # the pointer moves before the service reads the envelope
    with pytest.raises(ArtifactMovedError, match="no longer the artifact the weights were loaded from"):
        detector_factory(weights, ServiceConfig(model_dir=str(store)))
    made = detector_factory(weights, ServiceConfig(model_dir=str(store)), directory=store / "v1")()
    assert isinstance(made, EnvelopedDetector) and _same(made.envelope, _envelope(store / "v1"))
