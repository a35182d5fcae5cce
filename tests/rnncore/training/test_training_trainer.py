"""Dataset split, baselines, and the trainer: seeded determinism and a model that beats the baselines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rnncore.errors import TrainingError
from rnncore.kernels.preprocess import normalise_sequence
from rnncore.model.config import ModelConfig
from rnncore.training.baselines import error_scale, ewma_forecast, persistence_forecast, score_forecasts
from rnncore.training.dataset import build_dataset, split_index
from rnncore.training.trainer import TrainConfig, train
from stream.data.eventlog import EventRecord
from stream.data.synthetic import generate_fleet

pytestmark = pytest.mark.torch


def test_split_is_the_last_fraction_of_each_stream_s_time_range() -> None:
    times = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0])
    # cut-off at 80 s: events 0..8 are at or before it, so steps 0..7 (forecasting events 1..8) train
    assert split_index(times, 0.2) == 8
    assert split_index(times, 0.0) == 10


def test_dataset_orders_events_by_time_and_drops_short_streams() -> None:
    records = [EventRecord("a", float(t), (float(t),)) for t in (5, 1, 3, 2, 4, 0, 6, 7, 8, 9)]
    records += [EventRecord("short", 0.0, (1.0,))]
    dataset = build_dataset(records, ModelConfig(), validation_fraction=0.2, min_events=3)
    assert [s.key for s in dataset.streams] == ["a"]
    np.testing.assert_array_equal(dataset.streams[0].seq.values[:, 0], np.arange(10.0))
    assert dataset.summary["streams_too_short"] == 1
    with pytest.raises(TrainingError):
        build_dataset(records, ModelConfig(n_features=2))


def test_baselines_follow_their_definitions() -> None:
    values = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    seq = normalise_sequence(values, np.arange(5.0), ModelConfig())
    mu, _ = persistence_forecast(seq)
    np.testing.assert_allclose(seq.mean[:, 0] + mu[:, 0] * seq.std[:, 0], values)
    mu, _ = ewma_forecast(seq, 0.5)
    np.testing.assert_allclose(seq.mean[:, 0] + mu[:, 0] * seq.std[:, 0], [1.0, 2.0, 2.0, 3.5, 3.75])
    score = score_forecasts(seq, *persistence_forecast(seq), slice(1, 4), 1e-3)
    assert score.steps == 3
    assert score.mae == pytest.approx((1.0 + 3.0 + 1.0) / 3)


def test_error_scale_is_a_bias_corrected_ewma_of_squares() -> None:
    errors = np.array([[np.nan], [2.0], [-1.0], [3.0]])
    a = 0.05
    expected = [np.nan, 2.0, np.sqrt((a * (1 - a) * 4 + a * 1) / (1 - (1 - a) ** 2))]
    np.testing.assert_allclose(error_scale(errors)[:3, 0], expected)


TINY = TrainConfig(epochs=2, batch_size=8, bptt=16, segment_length=64, warmup=8, threads=1, progress=False)


def test_same_seed_gives_an_identical_model_and_another_seed_does_not() -> None:
    fleet = generate_fleet(4, 200, seed=2)
    config = ModelConfig(hidden_size=8)
    dataset = build_dataset(fleet.records(), config)
    a, b = train(dataset, config, TINY), train(dataset, config, TINY)
    c = train(dataset, config, TrainConfig(**{**TINY.__dict__, "seed": 1}))
    for name, array in a.weights.params.items():
        np.testing.assert_array_equal(array, b.weights.params[name])
    assert any(not np.array_equal(array, c.weights.params[name]) for name, array in a.weights.params.items())
    assert a.history == b.history
    assert a.event_steps > 0 and a.throughput > 0


def test_trained_model_beats_persistence_and_ewma_on_seasonal_sensors() -> None:
    fleet = generate_fleet(8, 800, families=["seasonal"], anomalies_per_stream=0, seed=5)
    config = ModelConfig(hidden_size=32, norm_window=100)
    dataset = build_dataset(fleet.records(), config)
    settings = TrainConfig(epochs=8, batch_size=16, bptt=32, segment_length=128, warmup=32, threads=1, progress=False)
    report = train(dataset, config, settings).report
    assert report.model.steps == dataset.validation_steps
    assert report.model.nll < min(report.persistence.nll, report.ewma.nll) - 0.05
    assert report.model.mae < 0.9 * min(report.persistence.mae, report.ewma.mae)


def test_training_needs_training_steps() -> None:
    records = [EventRecord("a", float(t), (1.0,)) for t in range(3)]
    dataset = build_dataset(records, ModelConfig(hidden_size=4), validation_fraction=0.9, min_events=2)
    with pytest.raises(TrainingError):
        train(dataset, ModelConfig(hidden_size=4), TINY)


def test_dropout_is_checked_and_needs_stacked_layers() -> None:
    with pytest.raises(TrainingError, match="dropout"):
        TrainConfig(dropout=1.0)
    dataset = build_dataset(generate_fleet(2, 200, seed=3).records(), ModelConfig(hidden_size=4))
    with pytest.raises(TrainingError, match="--layers 2"):
        train(dataset, ModelConfig(hidden_size=4), dataclasses.replace(TINY, dropout=0.2))
