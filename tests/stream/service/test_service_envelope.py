"""`rnnwatch serve` with an artifact that carries an envelope (what `rnnwatch train` writes), against the real
broker: the service publishes the EnvelopedDetector's scores, so a sustained fault stays flagged online."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.envelope_file import load_envelope, save_envelope
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import Envelope, fit_envelope
from rnncore.stages.enveloped import EnvelopedDetector
from stream.data.eventlog import EventRecord
from stream.errors import ServiceError
from stream.service.app import Service, detector_factory
from stream.service.config import ServiceConfig
from tests.kafka_helpers import MakeServiceTopics, run_sync
from tests.stream.service_harness import (
    config_for,
    feed,
    messages_of,
    publish,
    read_scores,
    reloads,
    running,
    serve_until_consumed,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=2, hidden_size=8), seed=3)
KEYS = ("rig-0", "rig-1")


def _values(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    factor = np.sin(2 * np.pi * np.arange(n) / 40.0)
    return np.stack([factor, 0.8 * factor], axis=1) + rng.normal(0, 0.1, (n, 2))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """tmp_path/model: :data:`WEIGHTS` with an envelope fitted on :func:`_training_records`."""
    directory = tmp_path / "model"
    save_envelope(fit_envelope(_training_records()), directory)  # first: model.json's checksum covers it
    save_artifact(directory, WEIGHTS, {"version": "with-envelope"})
    return directory


def test_serve_publishes_the_enveloped_scores_and_flags_a_sustained_fault(
    make_service_topics: MakeServiceTopics,
    kafka_bootstrap: str,
    make_group: Callable[[], str],
    model_dir: Path,
) -> None:
    topics = make_service_topics(partitions=2)
    test = {k: _values(10 + i, 600) for i, k in enumerate(KEYS)}
    test["rig-1"][300:] += np.array([0.0, 1.0])  # sensor 1 stuck off its correlation with sensor 0 for good
    events = [(k, 2e6 + t, test[k][t].tolist()) for t in range(600) for k in KEYS]
    run_sync(publish(kafka_bootstrap, topics["input"], messages_of(events)))
    config = config_for(kafka_bootstrap, topics, make_group(), model_dir=str(model_dir), max_batch_size=300)
    serve_until_consumed(config, len(events), weights=WEIGHTS)
    got = read_scores(kafka_bootstrap, topics["output"], len(events))
    offline = EnvelopedDetector(WEIGHTS, _loaded(model_dir), max_streams=4)
    for key in KEYS:
        expected = offline.step([key] * 600, 2e6 + np.arange(600.0), test[key]).scores
        np.testing.assert_allclose([r["score"] for r in got[key]], expected, rtol=1e-5, atol=1e-5, err_msg=key)
    flagged = np.array([r["score"] for r in got["rig-1"]]) >= 0.99
    assert flagged[400:].mean() > 0.8  # 100+ events after onset, still flagged
    assert flagged[50:300].mean() < 0.1


def _loaded(model_dir: Path) -> Envelope:
    envelope = load_envelope(model_dir)
    assert envelope is not None
    return envelope


def test_the_factory_refuses_an_envelope_of_another_width(model_dir: Path) -> None:
    one = ModelWeights.random(ModelConfig(n_features=1, hidden_size=4), seed=0)
    with pytest.raises(ServiceError, match="retrain both"):
        detector_factory(one, ServiceConfig(model_dir=str(model_dir)))
    trained = detector_factory(WEIGHTS, ServiceConfig(model_dir=str(model_dir)))()
    assert isinstance(trained, EnvelopedDetector) and trained.envelope.index
    untrained = detector_factory(WEIGHTS, ServiceConfig())()  # no artifact: every stream fits its own envelope
    assert isinstance(untrained, EnvelopedDetector) and not untrained.envelope.index


def test_factory_keeps_one_layout_and_refuses_to_drop_the_envelope_on_reload(model_dir: Path, tmp_path: Path) -> None:
    config = ServiceConfig(model_dir=str(model_dir))
    started_without = detector_factory(WEIGHTS, config, use_envelope=False)()
    assert isinstance(started_without, EnvelopedDetector) and started_without.envelope.index  # same layout: used
    assert started_without.table.specs == detector_factory(WEIGHTS, ServiceConfig())().table.specs
    bare_dir = tmp_path / "bare"
    save_artifact(bare_dir, WEIGHTS)
    with pytest.raises(ValueError, match="restart the service"):
        detector_factory(WEIGHTS, ServiceConfig(model_dir=str(bare_dir)), use_envelope=True)


def test_a_hot_reload_hands_the_new_envelope_to_running_partitions_and_refuses_one_without(
    make_service_topics: MakeServiceTopics,
    kafka_bootstrap: str,
    make_group: Callable[[], str],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    topics = make_service_topics(partitions=1)
    shifted = _values(20, 1500) + np.array([0.0, 1.0])  # retrained on a new normal: the shift is no fault now
    refit = fit_envelope([EventRecord("rig-1", float(t), tuple(r)) for t, r in enumerate(shifted.tolist())])
    test = _values(21, 400) + np.array([0.0, 1.0])
    events = [("rig-1", 3e6 + t, test[t].tolist()) for t in range(400)]
    config = config_for(kafka_bootstrap, topics, make_group(), model_dir=str(model_dir), model_poll_seconds=0.0)

    async def scenario() -> None:
        service = Service(config, WEIGHTS)
        async with running(service) as task:
            await feed(service, task, events[:200], 200, "the first 200 events")
            bare = tmp_path / "bare"
            save_artifact(bare, WEIGHTS, {"version": "no-envelope"})
            for name in ("model.json", "model.safetensors"):  # an artifact without envelope.npz: refused
                (model_dir / name).write_bytes((bare / name).read_bytes())
            (model_dir / "envelope.npz").unlink()
            service.request_reload()
            await wait_until(lambda: reloads(service, "refused") == 1, task, "the refusal")
            save_envelope(refit, model_dir)
            save_artifact(model_dir, WEIGHTS, {"version": "refit"})
            service.request_reload()
            await wait_until(lambda: reloads(service, "loaded") == 1, task, "the reload")
            await feed(service, task, events[200:], 400, "all 400 events")

    run_sync(scenario())
    offline = EnvelopedDetector(WEIGHTS, fit_envelope(_training_records()), max_streams=2)
    expected = list(offline.step(["rig-1"] * 200, 3e6 + np.arange(200.0), test[:200]).scores)
    offline.replace_envelope(refit)
    expected += list(offline.step(["rig-1"] * 200, 3e6 + 200 + np.arange(200.0), test[200:]).scores)
    got = [r["score"] for r in read_scores(kafka_bootstrap, topics["output"], 400)["rig-1"]]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    flagged = np.array(got) >= 0.99
    assert flagged[100:200].mean() > 0.8 and flagged[300:].mean() < 0.2  # the new envelope took over


def _training_records() -> list[EventRecord]:
    return [EventRecord(k, float(t), tuple(row)) for k in KEYS for t, row in enumerate(_values(1, 1500).tolist())]
