"""The rnnwatch NAB detector path: post-processing rules, probation-only learning, causal scoring."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rnncore.calibration import ScoringParams
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.evaluation.nab_data import NabFile
from stream.evaluation.nab_scorer import probation_length
from stream.evaluation.postprocess import (
    graded_novelty,
    level_novelty,
    range_excess,
    range_novelty,
    refractory,
    trailing_mean,
)
from stream.evaluation.rnnwatch_nab import NabRnnSettings, detector_scores, probation_records, rnnwatch_detectors


def _file(name: str, values: np.ndarray) -> NabFile:
    stamps = np.datetime64("2021-01-01T00:00:00") + np.arange(values.size) * np.timedelta64(60, "s")
    return NabFile(name=name, timestamps=stamps, values=values.astype(np.float64))


def test_range_novelty_flags_new_extremes_beyond_tolerance() -> None:
    x = np.array([0.0, 1.0, 0.5, 1.05, 2.0, -1.0, 0.0])
    assert range_novelty(x).tolist() == [0, 0, 0, 1, 1, 1, 0]
    assert range_novelty(x, tolerance=0.1).tolist() == [0, 0, 0, 0, 1, 1, 0]  # 1.05 is within 10 % of the range


def test_range_excess_is_the_overshoot_as_a_fraction_of_the_earlier_range() -> None:
    x = np.array([3.0, 3.0, 1.0, 2.0, 4.0, 0.0, 0.5])
    # range before each point: -, [3,3] (no width), [3,3], [1,3], [1,3], [1,4], [0,4]
    np.testing.assert_allclose(range_excess(x), [0, 0, 0, 0, 0.5, 1 / 3, 0])
    assert range_excess(np.array([1.0])).tolist() == [0.0] and range_excess(np.zeros(0)).size == 0


def test_graded_novelty_saturates_at_its_scale() -> None:
    x = np.array([0.0, 1.0, 1.01, 1.5, 3.0])  # overshoots: 1 %, 48 %, 100 % of the range before
    np.testing.assert_allclose(graded_novelty(x, 0.1), [0, 0, 0.1, 1, 1], atol=1e-12)
    with pytest.raises(ValueError):
        graded_novelty(x, 0.0)


def test_trailing_mean_is_causal_and_exact_on_constant_stretches() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 0.1, 0.1, 0.1, 0.1])
    m = trailing_mean(x, 3)
    assert np.isnan(m[:2]).all()
    np.testing.assert_allclose(m[2:4], [2.0, 3.0])
    assert m[6] == m[7]  # each window summed on its own: no drift on a flat stretch
    with pytest.raises(ValueError):
        trailing_mean(x, 0)


def test_level_novelty_flags_a_sustained_shift_inside_the_raw_range() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, size=600)  # the level hovers near 0 while the values span [-1, 1]
    x[500:] = 0.9  # inside the raw range: not novel as values, a new level as a trailing mean
    level = level_novelty(x, window=20, scale=0.1)
    assert range_novelty(x[500:]).sum() == 0 and graded_novelty(x, 0.02)[500:].max() == 0
    assert level[:19].max() == 0 and level[500:520].max() > 0.5 > 20 * level[100:500].mean()
    np.testing.assert_allclose(level_novelty(x[:510], 20, 0.1), level[:510])  # the future does not change it


def test_refractory_keeps_new_maxima_only() -> None:
    out = refractory(np.array([0.2, 0.9, 0.9, 0.5, 0.95, 0.0, 0.1]), events=1_000_000)
    assert out.tolist() == [0.2, 0.9, 0.0, 0.0, 0.95, 0.0, 0.0]
    decayed = refractory(np.array([1.0, 0.0, 0.0, 0.9]), events=2)  # 1.0 -> 0.5 -> 0.25: 0.9 is new again
    assert decayed.tolist() == [1.0, 0.0, 0.0, 0.9]
    with pytest.raises(ValueError):
        refractory(np.zeros(3), 0)


def test_refractory_holds_saturated_scores() -> None:
    x = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.5, 1.0])
    assert refractory(x, events=1000).tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]  # 1 > 0.999
    held = refractory(x, events=1000, ceiling_hold=3)  # a 1 within 3 events of a kept 1 is dropped
    assert held.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert refractory(np.array([0.9, 0.95, 0.97]), 1000, ceiling_hold=5).tolist() == [0.9, 0.95, 0.97]
    with pytest.raises(ValueError):
        refractory(x, 10, ceiling_hold=-1)


def test_probation_records_cover_only_the_probationary_rows() -> None:
    files = [_file("a/x.csv", np.arange(100.0)), _file("a/y.csv", np.arange(40.0))]
    records = probation_records(files)
    assert len(records) == probation_length(100) + probation_length(40)
    assert max(r.values[0] for r in records if r.key == "a/x.csv") == probation_length(100) - 1


def test_detector_scores_are_causal_and_flag_a_spike() -> None:
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(800) / 8) + 0.05 * rng.normal(size=800)
    x[600] += 6
    other = rng.normal(size=500)
    weights = ModelWeights.random(ModelConfig(hidden_size=8), seed=1)
    scoring = ScoringParams(warmup_events=100, tail_floor=1e-100)
    full = detector_scores([_file("s", x), _file("o", other)], weights, scoring)
    cut = detector_scores([_file("s", x[:601])], weights, scoring)  # the future must not change the past
    np.testing.assert_allclose(full["s"][:601], cut["s"], atol=1e-6)
    assert full["s"][600] == full["s"][200:].max() and full["o"].shape == (500,)


def test_full_detector_merges_novelty_and_filters(tmp_path: Path) -> None:
    x = np.sin(np.arange(600) / 8)
    x[400] = 5.0  # a new maximum
    settings = NabRnnSettings(model=ModelConfig(hidden_size=4), train_seconds=0.5, epochs=1)
    detectors, info = rnnwatch_detectors(settings)
    scores = detectors["rnnwatch"]([_file("s", x)])["s"]
    assert scores[400] >= settings.novelty_floor and info["weights"] in {"trained", "random"}
    alone = detectors["rnnwatch-detector"]([_file("s", x)])["s"]
    assert ((alone >= 0) & (alone <= 1)).all()
    off = replace(settings, range_novelty=False, refractory_events=0)
    raw = rnnwatch_detectors(off)[0]["rnnwatch"]([_file("s", x)])["s"]
    assert (raw[401:420] > 0).sum() > (scores[401:420] > 0).sum()  # the filter drops the repeated flags


def test_probation_records_take_the_model_inputs_when_given() -> None:
    files = [_file("a/x.csv", np.arange(100.0))]
    records = probation_records(files, {"a/x.csv": -np.arange(100.0)})
    assert [r.values[0] for r in records] == (-np.arange(probation_length(100))).tolist()


def test_full_detector_with_seasonal_inputs_does_not_look_ahead() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(3000)
    x = np.sin(2 * np.pi * t / 1440) + 0.05 * rng.normal(size=t.size)  # a daily cycle at one point a minute
    settings = NabRnnSettings(model=ModelConfig(hidden_size=4), train_seconds=0)
    assert settings.seasonal is not None
    full = rnnwatch_detectors(settings)[0]["rnnwatch"]([_file("s", x)])["s"]
    prefix = rnnwatch_detectors(settings)[0]["rnnwatch"]([_file("s", x[:2000])])["s"]
    np.testing.assert_allclose(full[:2000], prefix, atol=1e-6)
    assert ((full >= 0) & (full <= 1)).all()
