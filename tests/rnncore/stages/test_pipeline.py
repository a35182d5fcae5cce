"""The online scoring pipeline equals its whole-array reference (tests/pipeline_reference.py), stage by stage and
end to end, whether events arrive one at a time or in random batches of interleaved streams."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rnncore.errors import ConfigError
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.stages.novelty import NoveltyParams, novelty_schema, novelty_step
from rnncore.stages.pipeline import PipelineSettings, ScoringPipeline
from rnncore.stages.seasonality import SeasonalityParams, seasonality_schema, seasonality_step
from stream.evaluation.nab_data import NabFile
from tests.pipeline_reference import batch_scores, merge_and_filter, seasonal_residual, seasonal_surprise

MINUTE = 60.0


def _series(seed: int, n: int, step_minutes: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    """Irregular timestamps (jittered, some repeated or stepping back as in NAB) and a daily/weekly cycle with
    noise, a spike, a level shift and a flat stretch."""
    rng = np.random.default_rng(seed)
    t = 1.6e9 + seed * 7777.0 + np.cumsum(rng.uniform(0.5, 1.5, n) * step_minutes * MINUTE)
    t[n // 3] = t[n // 3 - 1]  # a repeated time
    t[n // 2] = t[n // 2 - 2]  # a step back
    hour = t / 3600.0
    x = 10 + 3 * np.sin(2 * np.pi * hour / 24) + np.where((hour // 24) % 7 >= 5, -2.0, 0.0)
    x = x + rng.standard_normal(n) * rng.choice([0.1, 1.0], n)
    x[2 * n // 3] += 25.0
    x[3 * n // 4 :] += 4.0
    x[n // 5 : n // 5 + 40] = 7.0
    return t, x


def _file(name: str, seed: int, n: int) -> NabFile:
    t, x = _series(seed, n)
    return NabFile(name=name, timestamps=t.astype(np.int64).astype("datetime64[s]"), values=x)


def _files(sizes: tuple[int, ...] = (2100, 1700, 2400)) -> list[NabFile]:
    return [_file(f"cat/s{i}.csv", i, n) for i, n in enumerate(sizes)]


def _interleaved(files: list[NabFile], rng: np.random.Generator) -> list[tuple[int, int]]:
    """(file, index) pairs in a random interleaving that keeps every file's own order."""
    owners = np.concatenate([np.full(f.values.size, k) for k, f in enumerate(files)])
    rng.shuffle(owners)
    seen = [0] * len(files)
    order = []
    for k in owners.tolist():
        order.append((k, seen[k]))
        seen[k] += 1
    return order


def _batches(n: int, rng: np.random.Generator, largest: int = 300) -> list[slice]:
    cuts, start = [], 0
    while start < n:
        stop = min(n, start + int(rng.integers(1, largest)))
        cuts.append(slice(start, stop))
        start = stop
    return cuts


def _columns(schema: dict, streams: int) -> dict[str, np.ndarray]:
    return {name: np.zeros((streams, *shape), dtype=dtype) for name, (shape, dtype) in schema.items()}


@pytest.mark.parametrize("min_count", [3, 15])
@pytest.mark.parametrize("batching", ["one_at_a_time", "random_batches"])
def test_seasonality_step_equals_batch_residual_and_surprise(min_count: int, batching: str) -> None:
    files = _files((3000, 2200, 2600))
    online = SeasonalityParams(min_count=min_count)
    columns = _columns(seasonality_schema(), len(files))
    rng = np.random.default_rng(min_count)
    order = _interleaved(files, rng)
    residual = [np.full(f.values.size, np.nan) for f in files]
    surprise = [np.full(f.values.size, np.inf) for f in files]
    cuts = [slice(i, i + 1) for i in range(len(order))] if batching == "one_at_a_time" else _batches(len(order), rng)
    for cut in cuts:
        part = order[cut]
        rows = np.array([k for k, _ in part], dtype=np.int64)
        times = np.array([files[k].seconds[i] for k, i in part])
        values = np.array([files[k].values[i] for k, i in part])
        res, sur = seasonality_step(online, columns, rows, times, values, np.ones(len(part), dtype=bool))
        for (k, i), r, s in zip(part, res.tolist(), sur.tolist(), strict=True):
            residual[k][i], surprise[k][i] = r, s
    for k, f in enumerate(files):
        np.testing.assert_array_equal(residual[k], seasonal_residual(f.seconds, f.values, online))
        np.testing.assert_array_equal(surprise[k], seasonal_surprise(f.seconds, f.values, online))
        assert np.isfinite(surprise[k]).sum() > f.values.size // 2  # the slots did warm up


@pytest.mark.parametrize("level_window", [0, 5, 20, 64])
def test_novelty_step_equals_batch_merge_and_refractory(level_window: int) -> None:
    files = _files((1500, 1200))
    rng = np.random.default_rng(level_window)
    scores = {f.name: np.where(rng.random(f.values.size) < 0.01, 1.0, rng.random(f.values.size) ** 8) for f in files}
    params = NoveltyParams(level_window=level_window, refractory_events=200, ceiling_hold=50)
    expected = merge_and_filter(files, scores, params)
    columns = _columns(novelty_schema(params), len(files))
    got = [np.full(f.values.size, np.nan) for f in files]
    order = _interleaved(files, rng)
    for cut in _batches(len(order), rng, largest=50):
        part = order[cut]
        rows = np.array([k for k, _ in part], dtype=np.int64)
        values = np.array([files[k].values[i] for k, i in part])
        merged = np.array([scores[files[k].name][i] for k, i in part])
        out = novelty_step(params, columns, rows, values, merged, np.ones(len(part), dtype=bool))
        for (k, i), s in zip(part, out.tolist(), strict=True):
            got[k][i] = s
    for k, f in enumerate(files):
        np.testing.assert_array_equal(got[k], expected[f.name])
        assert (expected[f.name] > 0).sum() >= 3  # some scores survive the filter, some do not
        assert (expected[f.name] == 0).sum() > f.values.size // 2


def test_novelty_params_name_the_bad_field() -> None:
    with pytest.raises(ConfigError, match="level_window"):
        NoveltyParams(level_window=200)
    with pytest.raises(ConfigError, match="novelty_scale"):
        NoveltyParams(novelty_scale=0.0)


def _settings() -> tuple[ModelConfig, PipelineSettings]:
    """A small model and the default pipeline with short warm-ups, so short series exercise every stage."""
    defaults = PipelineSettings()
    return ModelConfig(hidden_size=8, norm_window=500), PipelineSettings(
        detector_scoring=replace(defaults.detector_scoring, warmup_events=50),
        seasonality=SeasonalityParams(min_count=5),
        seasonal_scoring=replace(defaults.seasonal_scoring, warmup_events=50),
        novelty=NoveltyParams(refractory_events=300, ceiling_hold=100),
    )


def _online(files: list[NabFile], weights: ModelWeights, settings: PipelineSettings) -> dict[str, np.ndarray]:
    """Every file through one ScoringPipeline, one stream per file; a step carries each file's i-th event."""
    pipeline = ScoringPipeline(weights, settings, max_streams=max(len(files), 1))
    scores = {f.name: np.zeros(f.values.size) for f in files}
    for i in range(max(f.values.size for f in files)):
        live = [f for f in files if i < f.values.size]
        times = np.array([f.seconds[i] for f in live])
        result = pipeline.step([f.name for f in live], times, np.array([f.values[i] for f in live]))
        for f, score in zip(live, result.scores.tolist(), strict=True):
            scores[f.name][i] = score
    return scores


@pytest.mark.parametrize("batching", ["one_at_a_time", "random_batches"])
def test_pipeline_equals_the_batch_reference(batching: str) -> None:
    files = _files()
    config, settings = _settings()
    weights = ModelWeights.random(config, seed=3)
    expected = batch_scores(files, weights, settings)
    pipeline = ScoringPipeline(weights, settings, max_streams=8)
    rng = np.random.default_rng(7)
    order = _interleaved(files, rng)
    got = [np.full(f.values.size, np.nan) for f in files]
    cuts = [slice(i, i + 1) for i in range(len(order))] if batching == "one_at_a_time" else _batches(len(order), rng)
    for cut in cuts:
        part = order[cut]
        keys = [files[k].name for k, _ in part]
        times = np.array([files[k].seconds[i] for k, i in part])
        values = np.array([files[k].values[i] for k, i in part])
        result = pipeline.step(keys, times, values)
        assert (result.status == 0).all()
        for (k, i), s in zip(part, result.scores.tolist(), strict=True):
            got[k][i] = s
    for k, f in enumerate(files):
        np.testing.assert_allclose(got[k], expected[f.name], rtol=0, atol=1e-6)
        assert expected[f.name].max() > 0.5  # the spike / shift is flagged: the comparison is not between zeros
    assert pipeline.n_streams == len(files)


def test_pipeline_scores_equal_batch_scores_with_the_default_settings() -> None:
    files = _files((4000, 3100))
    weights = ModelWeights.random(ModelConfig(hidden_size=8, norm_window=3000, min_scale=0.05), seed=0)
    expected = batch_scores(files, weights, PipelineSettings())
    got = _online(files, weights, PipelineSettings())
    for f in files:
        np.testing.assert_allclose(got[f.name], expected[f.name], rtol=0, atol=1e-6)
    assert PipelineSettings().bytes_per_stream() == 4124
