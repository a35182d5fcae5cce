"""The online scoring pipeline equals the batch NAB reference (stream.evaluation), stage by stage and end to end,
whether events arrive one at a time or in random batches of interleaved streams."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.stages.novelty import NoveltyError, NoveltyParams, novelty_schema, novelty_step
from rnncore.stages.pipeline import PipelineSettings, ScoringPipeline
from rnncore.stages.seasonality import SeasonalityParams, seasonality_schema, seasonality_step
from stream.evaluation.nab_data import NabFile
from stream.evaluation.rnnwatch_nab import NabRnnSettings, batch_scores, merge_and_filter, pipeline_scores
from stream.evaluation.seasonal import SeasonalParams, seasonal_residual, seasonal_surprise

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
    reference = SeasonalParams(min_count=min_count)
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
        np.testing.assert_array_equal(residual[k], seasonal_residual(f.seconds, f.values, reference))
        np.testing.assert_array_equal(surprise[k], seasonal_surprise(f.seconds, f.values, reference))
        assert np.isfinite(surprise[k]).sum() > f.values.size // 2  # the slots did warm up


@pytest.mark.parametrize("level_window", [0, 5, 20, 64])
def test_novelty_step_equals_batch_merge_and_refractory(level_window: int) -> None:
    files = _files((1500, 1200))
    rng = np.random.default_rng(level_window)
    scores = {f.name: np.where(rng.random(f.values.size) < 0.01, 1.0, rng.random(f.values.size) ** 8) for f in files}
    settings = NabRnnSettings(level_window=level_window, refractory_events=200, ceiling_hold=50)
    params = settings.to_pipeline().novelty
    expected = merge_and_filter(files, scores, settings)
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
    with pytest.raises(NoveltyError, match="level_window"):
        NoveltyParams(level_window=200)
    with pytest.raises(NoveltyError, match="novelty_scale"):
        NoveltyParams(novelty_scale=0.0)


def _nab_settings() -> NabRnnSettings:
    scoring = replace(NabRnnSettings().scoring, warmup_events=50)
    seasonal_scoring = replace(NabRnnSettings().seasonal_scoring, warmup_events=50)
    return NabRnnSettings(
        model=ModelConfig(hidden_size=8, norm_window=500),
        scoring=scoring,
        seasonal=SeasonalParams(min_count=5),
        seasonal_scoring=seasonal_scoring,
        refractory_events=300,
        ceiling_hold=100,
    )


@pytest.mark.parametrize("batching", ["one_at_a_time", "random_batches"])
def test_pipeline_equals_the_batch_nab_detector(batching: str) -> None:
    files = _files()
    settings = _nab_settings()
    weights = ModelWeights.random(settings.model, seed=3)
    expected = batch_scores(files, weights, settings)
    pipeline = ScoringPipeline(weights, settings.to_pipeline(), max_streams=8)
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


def test_pipeline_scores_equal_batch_scores_with_the_nab_defaults() -> None:
    files = _files((4000, 3100))
    settings = replace(NabRnnSettings(), model=ModelConfig(hidden_size=8, norm_window=3000, min_scale=0.05))
    weights = ModelWeights.random(settings.model, seed=0)
    expected = batch_scores(files, weights, settings)
    got = pipeline_scores(files, weights, settings.to_pipeline())
    for f in files:
        np.testing.assert_allclose(got[f.name], expected[f.name], rtol=0, atol=1e-6)


def test_nab_settings_are_the_pipeline_defaults() -> None:
    assert NabRnnSettings().to_pipeline() == PipelineSettings()


def test_the_bench_rnnwatch_detector_runs_the_online_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    import stream.evaluation.rnnwatch_nab as nab

    files = _files((1500,))
    settings = replace(_nab_settings(), train_seconds=0.0)
    weights = ModelWeights.random(settings.model, seed=settings.seed)
    expected = batch_scores(files, weights, settings)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the bench must not take the batch path")

    monkeypatch.setattr(nab, "batch_scores", refuse)
    detectors, info = nab.rnnwatch_detectors(settings)
    np.testing.assert_allclose(detectors["rnnwatch"](files)[files[0].name], expected[files[0].name], rtol=0, atol=1e-6)
    assert info["scoring"].startswith("online ScoringPipeline, 4124 bytes")
