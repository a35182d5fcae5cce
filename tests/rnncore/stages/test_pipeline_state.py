"""The pipeline's own per-stream state: every column resumes bit-exactly, rejected events change nothing, reload
and the bytes it adds per stream (the promises every scorer keeps are in test_scorer_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest

from rnncore.calibration import ScoringParams
from rnncore.detector import Detector
from rnncore.errors import DetectorError, IncompatibleModelError, SnapshotError
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.stages.novelty import NoveltyParams
from rnncore.stages.pipeline import PipelineSettings, ScoringPipeline
from rnncore.stages.seasonality import SeasonalityParams
from rnncore.state.table import EventStatus

CONFIG = ModelConfig(hidden_size=8, norm_window=500)


def _settings() -> PipelineSettings:
    return PipelineSettings(
        detector_scoring=ScoringParams(warmup_events=30, tail_floor=1e-100),
        seasonality=SeasonalityParams(min_count=3),
        seasonal_scoring=ScoringParams(short_window=5, warmup_events=30, tail_floor=1e-100),
        novelty=NoveltyParams(refractory_events=100, ceiling_hold=30),
    )


def _events(n: int = 1200, streams: int = 3, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Interleaved events of ``streams`` keys, 20 minutes apart per stream, a daily cycle and a spike each."""
    rng = np.random.default_rng(seed)
    keys = [f"k{rng.integers(streams)}" for _ in range(n)]
    counts: dict[str, int] = {}
    times, values = np.empty(n), np.empty(n)
    for i, key in enumerate(keys):
        j = counts.get(key, 0)
        counts[key] = j + 1
        times[i] = 1.7e9 + 1200.0 * j + 17.0 * int(key[1:])
        values[i] = np.sin(2 * np.pi * times[i] / 86400) + 0.1 * rng.standard_normal() + (8.0 if j == 300 else 0.0)
    return keys, times, values


def _run(
    pipeline: ScoringPipeline, keys: list[str], times: np.ndarray, values: np.ndarray, size: int = 64
) -> np.ndarray:
    out = []
    for start in range(0, len(keys), size):
        result = pipeline.step(keys[start : start + size], times[start : start + size], values[start : start + size])
        out.append(result.scores)
    return np.concatenate(out)


def test_snapshot_and_restore_mid_stream_equal_an_uninterrupted_run() -> None:
    weights = ModelWeights.random(CONFIG, seed=1)
    keys, times, values = _events()
    whole = _run(ScoringPipeline(weights, _settings()), keys, times, values)
    assert whole.max() > 0.5
    first = ScoringPipeline(weights, _settings())
    head = _run(first, keys[:700], times[:700], values[:700])
    resumed = ScoringPipeline(weights, _settings())
    assert resumed.restore(first.snapshot()) == 3
    streams = first.table.keys()
    for name, column in first.table.columns.items():  # every column, the pipeline's included, came across
        restored = resumed.table.columns[name]
        np.testing.assert_array_equal(column[first.table.lookup(streams)], restored[resumed.table.lookup(streams)])
    tail = _run(resumed, keys[700:], times[700:], values[700:])
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)


def test_a_bare_detector_snapshot_is_refused() -> None:
    weights = ModelWeights.random(CONFIG, seed=1)
    detector = Detector(weights)
    detector.step(["a"], np.array([0.0]), np.array([1.0], dtype=np.float32))
    pipeline = ScoringPipeline(weights, _settings())
    with pytest.raises(SnapshotError, match="season"):
        pipeline.restore(detector.snapshot())
    assert pipeline.n_streams == 0


def test_rejected_events_change_no_state_and_do_not_disturb_the_batch() -> None:
    weights = ModelWeights.random(CONFIG, seed=2)
    keys, times, values = _events(n=900)
    clean = _run(ScoringPipeline(weights, _settings()), keys, times, values, size=50)
    bad_keys = list(keys)
    bad_times, bad_values = times.copy(), values.copy()
    rng = np.random.default_rng(5)
    positions = sorted(rng.choice(len(keys), size=60, replace=False).tolist())
    kinds = ["nan", "inf", "huge", "time", "key", "empty"] * 10
    noisy_keys: list[object] = []
    noisy_times, noisy_values, bad = [], [], []
    j = 0
    for i in range(len(keys)):
        if j < len(positions) and positions[j] == i:  # a bad event slipped in before event i
            kind = kinds[j]
            noisy_keys.append(None if kind == "key" else "" if kind == "empty" else keys[i])
            noisy_times.append(np.inf if kind == "time" else times[i])
            noisy_values.append({"nan": np.nan, "inf": -np.inf, "huge": 1e300}.get(kind, values[i]))
            bad.append(True)
            j += 1
        noisy_keys.append(bad_keys[i])
        noisy_times.append(bad_times[i])
        noisy_values.append(bad_values[i])
        bad.append(False)
    pipeline = ScoringPipeline(weights, _settings())
    scores, status = [], []
    for start in range(0, len(noisy_keys), 50):
        result = pipeline.step(
            noisy_keys[start : start + 50],
            np.array(noisy_times[start : start + 50]),
            np.array(noisy_values[start : start + 50]),
        )
        scores.append(result.scores)
        status.append(result.status)
    got, codes = np.concatenate(scores), np.concatenate(status)
    flags = np.array(bad)
    np.testing.assert_array_equal(got[~flags], clean)
    assert (
        (got[flags] == 0).all() and (codes[flags] != EventStatus.OK).all() and (codes[~flags] == EventStatus.OK).all()
    )
    assert set(codes[flags].tolist()) == {EventStatus.INVALID_VALUE, EventStatus.BAD_KEY}
    assert pipeline.n_streams == 3


def test_reload_keeps_the_state_and_refuses_multi_feature_models() -> None:
    keys, times, values = _events(n=300)
    pipeline = ScoringPipeline(ModelWeights.random(CONFIG, seed=1), _settings())
    _run(pipeline, keys, times, values)
    before = pipeline.snapshot()
    pipeline.reload(ModelWeights.random(CONFIG, seed=2))
    assert pipeline.snapshot() == before
    with pytest.raises(IncompatibleModelError, match="single-value"):
        pipeline.reload(ModelWeights.random(ModelConfig(hidden_size=8, n_features=2), seed=1))
    with pytest.raises(DetectorError, match="single-value"):
        ScoringPipeline(ModelWeights.random(ModelConfig(hidden_size=8, n_features=2), seed=1))


def test_pipeline_state_bytes_per_stream() -> None:
    pipeline = ScoringPipeline(ModelWeights.random(CONFIG, seed=1))
    detector = Detector(ModelWeights.random(CONFIG, seed=1))
    # slots: 192 int32 counts + 192 x (mean, deviation) float64 + 4 scalars; surprise calibration 7 float32;
    # novelty: 8 scalars and a 20-value ring, float64
    assert pipeline.pipeline_bytes_per_stream == 192 * 4 + 192 * 2 * 8 + 4 * 8 + 7 * 4 + (8 + 20) * 8 == 4124
    assert pipeline.table.row_nbytes == detector.table.row_nbytes + pipeline.pipeline_bytes_per_stream


def test_detector_step_rows_after_assign_rows_equals_step() -> None:
    weights = ModelWeights.random(CONFIG, seed=5)
    keys, times, values = _events(n=400)
    values32 = values.astype(np.float32)
    values32[[10, 50]] = np.nan
    keys[70] = ""
    plain, split = Detector(weights, max_streams=3), Detector(weights, max_streams=3)
    for start in range(0, 400, 64):
        part = slice(start, start + 64)
        expected = plain.step(keys[part], times[part], values32[part])
        rows, status = split.assign_rows(keys[part], times[part], values32[part])
        got = split.step_rows(rows, status, times[part], values32[part])
        for name in ("scores", "nll", "mean", "scale", "status"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    assert split.snapshot() == plain.snapshot()
    with pytest.raises(DetectorError, match="assign_rows"):
        split.step_rows(np.array([7]), np.array([0]), np.array([0.0]), np.array([1.0], dtype=np.float32))


def test_values_as_a_column_give_the_same_scores_and_column_forecasts() -> None:
    weights = ModelWeights.random(CONFIG, seed=6)
    keys, times, values = _events(n=200)
    flat = ScoringPipeline(weights, _settings()).step(keys, times, values)
    column = ScoringPipeline(weights, _settings()).step(keys, times, values[:, None])
    np.testing.assert_array_equal(column.scores, flat.scores)
    assert column.mean.shape == (200, 1) and flat.mean.shape == (200,)
    with pytest.raises(DetectorError, match="values"):
        ScoringPipeline(weights, _settings()).step(keys, times, np.stack([values, values], axis=1))
