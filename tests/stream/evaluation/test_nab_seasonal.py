"""Seasonal NAB preprocessing: slot statistics, no look-ahead, a missed daily peak is surprising."""

from __future__ import annotations

import numpy as np
import pytest

from rnncore.calibration import ScoringParams
from stream.evaluation import EvaluationError
from stream.evaluation.nab_data import NabFile
from stream.evaluation.rnnwatch_nab import NabRnnSettings, calibrated_series, seasonal_scores
from stream.evaluation.seasonal import SeasonalParams, seasonal_residual, seasonal_surprise

HOUR = 3600.0


def _daily(days: int, step_s: float = 1800.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A clean daily cycle (peak at noon) with a little noise, sampled every ``step_s`` seconds."""
    t = np.arange(0.0, days * 86400.0, step_s)
    rng = np.random.default_rng(seed)
    x = 10.0 + 5.0 * np.sin(2 * np.pi * (t % 86400.0) / 86400.0) + 0.1 * rng.normal(size=t.size)
    return t, x


def _residual_reference(t: np.ndarray, x: np.ndarray, p: SeasonalParams) -> np.ndarray:
    """Literal re-statement: expected value from the earlier points of the same hour-of-week/-day slot."""
    out = np.zeros(x.size)
    for i in range(x.size):
        hours = np.floor(t[: i + 1] / HOUR).astype(np.int64)
        expected = float(np.mean(x[:i])) if i else float(x[0])
        for period in (24, 168)[::-1]:
            same = np.flatnonzero(hours[:i] % period == hours[i] % period)
            if same.size >= p.min_count:
                mean = 0.0
                for k, j in enumerate(same.tolist(), start=1):
                    mean += max(1.0 / k, p.alpha) * (x[j] - mean)
                expected = mean
                break
        out[i] = x[i] - expected
    return out


def test_residual_matches_a_literal_reference() -> None:
    t, x = _daily(20, step_s=3 * HOUR)  # both the hour-of-day fallback and hour-of-week slots get used
    p = SeasonalParams(alpha=0.2, min_count=2)
    np.testing.assert_allclose(seasonal_residual(t, x, p), _residual_reference(t, x, p), atol=1e-9)


def test_outputs_do_not_look_ahead() -> None:
    t, x = _daily(12)
    future = x.copy()
    future[300:] = np.random.default_rng(1).normal(size=x.size - 300) * 100.0
    for fn in (seasonal_residual, seasonal_surprise):
        a, b = fn(t, x), fn(t, future)
        np.testing.assert_array_equal(a[:300], b[:300])
        assert not np.allclose(a[300:], b[300:], equal_nan=True)


def test_missing_daily_peak_is_the_most_surprising_point() -> None:
    t, x = _daily(14)
    noon_day10 = int((10 * 86400 + 6 * HOUR) // 1800)  # sin peaks 6 h after midnight
    x[noon_day10] = 10.0  # the value every night passes through, but never at this hour
    z = seasonal_surprise(t, x)
    residual = seasonal_residual(t, x)
    assert np.isnan(z[0]) and np.nanargmax(z[48 * 8 :]) + 48 * 8 == noon_day10
    assert np.argmax(np.abs(residual[48 * 8 :])) + 48 * 8 == noon_day10
    assert np.abs(residual[48 * 8 :]).mean() < 0.5  # the cycle itself is explained away
    assert x.min() < 10.0 < x.max()  # range novelty alone could not see it


def test_seasonal_score_is_calibrated_and_flags_the_missed_peak() -> None:
    t, x = _daily(14)
    peak = int((10 * 86400 + 6 * HOUR) // 1800)
    x[peak] = 10.0
    stamps = (t.astype(np.int64)).astype("datetime64[s]")
    settings = NabRnnSettings(seasonal_scoring=ScoringParams(warmup_events=100, tail_floor=1e-100, short_window=5))
    score = seasonal_scores([NabFile(name="d", timestamps=stamps, values=x)], settings)["d"]
    assert ((score >= 0) & (score <= 1)).all() and score[peak] == score.max() and score[peak] > 0.5
    assert (calibrated_series(np.full(50, np.nan), ScoringParams(warmup_events=0)) == 0).all()
    off = seasonal_scores([NabFile(name="d", timestamps=stamps, values=x)], NabRnnSettings(seasonal=None))["d"]
    assert (off == 0).all()


def test_invalid_inputs_raise() -> None:
    with pytest.raises(EvaluationError):
        seasonal_residual(np.arange(3.0), np.arange(4.0))
    with pytest.raises(EvaluationError):
        seasonal_surprise(np.arange(3.0), np.array([1.0, np.nan, 2.0]))
    with pytest.raises(EvaluationError):
        SeasonalParams(alpha=0.0)
    with pytest.raises(EvaluationError):
        SeasonalParams(min_count=0)
