"""The model-store reload race: weights and envelope come from one version even while ``current`` moves.

A reload read the weights at the version ``current`` named, then the envelope from ``model_dir`` again: a pointer
moved in between (``rnnwatch train`` committing a new version, ``rnnwatch model use`` rolling back) gave the
partitions the weights of one version with the envelope of another, each valid on its own. Now the watcher resolves
the pointer once (``ModelWatcher.loaded_from``) and the service reads the envelope from that version. A start whose
weights were loaded before the pointer moved loads the version ``current`` names now (bounded, logged, counted), and
its watcher starts from that version, so a later move is still seen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rnncore.model.artifact as artifact
from rnncore.model.artifact import load_artifact, save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.envelope_file import load_envelope, save_envelope
from rnncore.model.store import commit_version, incoming_dir, use_version
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import Envelope, fit_envelope
from rnncore.stages.enveloped import EnvelopedDetector
from stream.cli import main
from stream.data.eventlog import EventRecord
from stream.errors import ArtifactMovedError
from stream.service import reload, serving_model
from stream.service.app import Service, detector_factory
from stream.service.config import ServiceConfig
from stream.service.metrics import ServiceMetrics
from stream.service.reload import ModelWatcher
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


def test_the_factory_refuses_weights_of_another_version_than_the_directory_it_reads(tmp_path: Path) -> None:
    store = _store(tmp_path)
    weights = load_artifact(store)  # v1
    use_version(store, "v2")
    with pytest.raises(ArtifactMovedError, match="no longer the artifact the weights were loaded from"):
        detector_factory(weights, ServiceConfig(model_dir=str(store)))
    made = detector_factory(weights, ServiceConfig(model_dir=str(store)), directory=store / "v1")()
    assert isinstance(made, EnvelopedDetector) and _same(made.envelope, _envelope(store / "v1"))


def test_a_start_whose_weights_were_read_before_current_moved_serves_the_version_current_names_now(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)
    weights = load_artifact(store)  # v1, as `rnnwatch serve` loads it before building the service
    use_version(store, "v2")  # the pointer moves before the service reads the envelope
    service = Service(ServiceConfig(model_dir=str(store), model_poll_seconds=0.0), weights)
    assert service.weights is not None and service.weights.metadata["version"] == "v2"
    fresh = service._make_detector()
    assert isinstance(fresh, EnvelopedDetector) and _same(fresh.envelope, _envelope(store / "v2"))
    assert service.metrics.value("rnnwatch_model_reloads_total", {"result": "start_retried"}) == 1
    assert [r.levelname for r in caplog.records if "changed while the service loaded its model" in r.message] == [
        "WARNING"
    ]
    watcher = service._watcher
    assert watcher is not None and watcher.loaded_from == store / "v2"
    watcher.request()
    assert watcher.load_if_changed() is None  # v2 is what it serves: no reload of the same version
    use_version(store, "v3")
    watcher.request()
    reloaded = watcher.load_if_changed()
    assert reloaded is not None and reloaded.metadata["version"] == "v3"


def test_a_start_against_a_directory_that_keeps_changing_stops_after_a_bounded_number_of_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "model"  # a plain artifact directory, rewritten in place (no store to resolve once)
    save_artifact(plain, ModelWeights.random(CONFIG, seed=0), {"version": "w0"})
    weights = load_artifact(plain)
    save_artifact(plain, ModelWeights.random(CONFIG, seed=1), {"version": "w1"})  # rewritten after the load
    real = artifact.load_artifact
    loads: list[str] = []

    def load_then_rewrite(directory: str) -> ModelWeights:  # every load is overtaken by another rewrite
        loaded = real(directory)
        loads.append(loaded.metadata["version"])
        save_artifact(plain, ModelWeights.random(CONFIG, seed=len(loads) + 1), {"version": f"w{len(loads) + 1}"})
        return loaded

    monkeypatch.setattr(artifact, "load_artifact", load_then_rewrite)
    metrics = ServiceMetrics()
    pauses: list[float] = []
    with pytest.raises(ArtifactMovedError, match=r"kept changing while the service loaded its model \(5 attempts"):
        serving_model.serving_model(weights, ServiceConfig(model_dir=str(plain)), metrics, sleep=pauses.append)
    assert loads == ["w1", "w2", "w3", "w4"] and pauses == [serving_model.START_RETRY_SECONDS] * 4
    assert metrics.value("rnnwatch_model_reloads_total", {"result": "start_retried"}) == 4
    monkeypatch.setattr(artifact, "load_artifact", real)  # the writer is done: the next start takes its version
    started = serving_model.serving_model(weights, ServiceConfig(model_dir=str(plain)), metrics, sleep=pauses.append)
    assert started.weights.metadata["version"] == "w5" and started.directory == plain


def test_a_watcher_started_from_the_served_version_sees_a_pointer_that_moved_before_it_was_made(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    use_version(store, "v2")  # moved after the service read v1, before the watcher looked
    watcher = ModelWatcher(store, 0.0, serving=store / "v1")
    watcher.request()
    weights = watcher.load_if_changed()
    assert weights is not None and weights.metadata["version"] == "v2" and watcher.loaded_from == store / "v2"


def test_rnnwatch_serve_gets_past_a_pointer_moved_while_it_loaded_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's own start path: the pointer moves right after serve read the weights; the start loads v2 and goes
    on to connect (nothing listens on port 1: exit 1 with the connection line, not exit 2 over the model)."""
    store = _store(tmp_path)
    real = artifact.load_artifact
    calls: list[str] = []

    def load_then_move_once(directory: str | Path) -> ModelWeights:
        weights = real(directory)
        calls.append(weights.metadata["version"])
        if len(calls) == 1:
            use_version(store, "v2")
        return weights

    monkeypatch.setattr(artifact, "load_artifact", load_then_move_once)
    argv = ["serve", "--model-dir", str(store), "--bootstrap-servers", "127.0.0.1:1", "--metrics-port", "0"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert calls == ["v1", "v2"]
    assert "changed while the service loaded its model" in err and "attempt 2 of 5" in err, err
    assert "cannot connect to Kafka at 127.0.0.1:1" in err and "Traceback" not in err, err
