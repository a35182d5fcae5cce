"""NAB scoring rules on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.errors import EvaluationError
from stream.evaluation.nab_scorer import (
    OUTSIDE,
    PROBATIONARY,
    PROFILES,
    Profile,
    point_weights,
    probation_length,
    scaled_sigmoid,
    score_corpus,
    sweep_thresholds,
)

STANDARD = PROFILES[0]


def test_scaled_sigmoid_published_points() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


def test_probation_length_is_15_percent_capped_at_750() -> None:
    assert probation_length(100) == 15
    assert probation_length(4000) == 600
    assert probation_length(20000) == 750


def test_point_weights_window_and_fp_positions() -> None:
    w = point_weights(200, [(100, 109)], STANDARD)
    assert w.window[0] == PROBATIONARY and w.window[50] == OUTSIDE and w.window[105] == 0
    assert w.reward[100] == pytest.approx(1.0)  # first point of a window: full tp weight
    assert w.reward[109] == pytest.approx(scaled_sigmoid(-0.1) / scaled_sigmoid(-1.0))
    assert w.reward[50] == pytest.approx(-0.11)  # before the first window
    assert w.reward[118] == pytest.approx(0.11 * scaled_sigmoid(1.0))  # |118 - 109| / (10 - 1) = 1
    assert w.n_windows == 1


def _one_file(scores: list[float] | np.ndarray, windows: list[tuple[int, int]]) -> dict[str, float]:
    results = score_corpus({"a.csv": np.asarray(scores, dtype=np.float64)}, {"a.csv": windows})
    return {name: r.normalised for name, r in results.items()}


def test_perfect_detector_scores_100_and_null_scores_0() -> None:
    n, windows = 300, [(100, 119), (200, 219)]
    perfect = np.zeros(n)
    for left, _ in windows:
        perfect[left] = 1.0
    assert _one_file(perfect, windows) == pytest.approx({p.name: 100.0 for p in PROFILES})
    assert _one_file(np.zeros(n), windows) == pytest.approx({p.name: 0.0 for p in PROFILES})


def test_known_false_positive_penalty() -> None:
    """One window detected at its first point plus one flag before any window: raw = 1 - 0.11 under standard."""
    n, windows = 300, [(100, 119)]
    scores = np.zeros(n)
    scores[100] = 1.0
    scores[60] = 1.0
    result = score_corpus({"a.csv": scores}, {"a.csv": windows})["standard"]
    assert result.best.raw == pytest.approx(1.0 - 0.11)
    assert (result.null_raw, result.perfect_raw) == (-1.0, 1.0)
    assert result.normalised == pytest.approx(100 * (1.0 - 0.11 + 1.0) / 2.0)
    assert (result.best.tp, result.best.fn, result.best.fp) == (1, 0, 1)


def test_only_first_detection_in_window_counts_and_late_detection_earns_less() -> None:
    windows = [(100, 119)]
    late = np.zeros(300)
    late[110] = 1.0
    late_many = late.copy()
    late_many[111:119] = 1.0
    expected = scaled_sigmoid(-(119 - 110 + 1) / 20) / scaled_sigmoid(-1.0)
    for scores in (late, late_many):
        result = score_corpus({"a.csv": scores}, {"a.csv": windows})["standard"]
        assert result.best.raw == pytest.approx(expected)


def test_threshold_is_optimised_over_the_corpus() -> None:
    """A low-scored FP cluster must be cut off by the threshold, keeping the detection."""
    windows = [(100, 119)]
    scores = np.zeros(300)
    scores[100] = 0.9
    scores[200:260] = 0.5  # 60 false positives would cost more than the window is worth
    result = score_corpus({"a.csv": scores}, {"a.csv": windows})["standard"]
    assert result.best.threshold == 0.9
    assert result.normalised == pytest.approx(100.0)


def test_a_fixed_threshold_flags_every_point_at_or_above_it() -> None:
    """The same scores at the default threshold: the FP cluster below it is not flagged, the one at it is."""
    windows = [(100, 119)]
    scores = np.zeros(300)
    scores[100] = 0.995
    scores[200:260] = 0.5
    below = score_corpus({"a.csv": scores}, {"a.csv": windows}, threshold=0.99)["standard"]
    assert (below.best.tp, below.best.fp, below.best.threshold) == (1, 0, 0.995)
    assert below.normalised == pytest.approx(100.0)
    scores[200:260] = 0.99
    at = score_corpus({"a.csv": scores}, {"a.csv": windows}, threshold=0.99)["standard"]
    assert (at.best.tp, at.best.fp) == (1, 60) and at.normalised < 0  # NAB's own sweep would cut them off
    nothing = score_corpus({"a.csv": scores}, {"a.csv": windows}, threshold=0.999)["standard"]
    assert nothing.best.threshold == math.inf and nothing.normalised == 0.0


def test_probationary_detections_and_windows_are_ignored() -> None:
    windows = [(2, 5), (100, 119)]  # the first window lies inside the 15 % probation of 300 rows
    scores = np.zeros(300)
    scores[0:45] = 1.0
    scores[100] = 1.0
    result = score_corpus({"a.csv": scores}, {"a.csv": windows})["standard"]
    assert result.best.raw == pytest.approx(1.0) and result.perfect_raw == pytest.approx(1.0)


def test_low_fn_profile_doubles_the_miss_cost() -> None:
    weights = [point_weights(300, [(100, 119), (200, 219)], PROFILES[2])]
    sweep = sweep_thresholds([np.zeros(300)], weights, PROFILES[2])
    assert sweep[0].raw == -4.0 and sweep[0].threshold == math.inf


def test_multi_file_sweep_matches_sum_of_files_at_a_shared_threshold() -> None:
    rng = np.random.default_rng(0)
    profile = Profile("p", tp=1.0, fp=0.2, fn=1.5)
    scores = [rng.random(400), rng.random(300)]
    weights = [point_weights(400, [(100, 140), (300, 350)], profile), point_weights(300, [(200, 230)], profile)]
    corpus = sweep_thresholds(scores, weights, profile)
    for level in corpus[1::37]:
        parts = [
            [r for r in sweep_thresholds([s], [w], profile) if r.threshold >= level.threshold][-1]
            for s, w in zip(scores, weights, strict=True)
        ]
        assert level.raw == pytest.approx(sum(p.raw for p in parts))


def test_malformed_inputs_raise() -> None:
    with pytest.raises(EvaluationError, match="overlap"):
        point_weights(100, [(10, 20), (15, 30)], STANDARD)
    with pytest.raises(EvaluationError, match="outside"):
        point_weights(100, [(90, 120)], STANDARD)
    with pytest.raises(EvaluationError, match="no labelled windows"):
        score_corpus({"x.csv": np.zeros(10)}, {})
    with pytest.raises(EvaluationError, match="NaN"):
        score_corpus({"x.csv": np.full(100, np.nan)}, {"x.csv": []})
