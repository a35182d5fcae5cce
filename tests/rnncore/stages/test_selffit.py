"""The online envelope of a stream without a training reference: it equals the offline fit on the same rows,
skips flagged events, then stays frozen (a later fault cannot move it), and fits the 1 KB budget at F = 1."""

from __future__ import annotations

import numpy as np
import pytest

from rnncore.errors import EnvelopeError
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.scorer import build_scorer
from rnncore.stages.contributions import ridged_mean_icov
from rnncore.stages.envelope import _features
from rnncore.stages.enveloped import EnvelopedDetector
from rnncore.stages.selffit import SELF_COLUMN, SelfFitParams, self_fit_step, self_fit_width

WARMUP, FIT, HELD, Q = 200, 600, 300, 0.995
ONE_STAGE = SelfFitParams(fit_events=FIT, held_events=HELD, final_fit_events=0)


def _series(seed: int, n: int, features: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    factor = np.sin(2 * np.pi * np.arange(n) / 50.0)[:, None]
    return factor * rng.uniform(0.5, 1.5, features) + rng.normal(0, 0.2, (n, features))


def _t2(d: np.ndarray, icov: np.ndarray) -> np.ndarray:
    return np.asarray(np.einsum("ij,jk,ik->i", d, icov, d))


def _online(
    x: np.ndarray, flagged: np.ndarray, params: SelfFitParams = ONE_STAGE, top_k: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    feats = _features(x, 32)
    state = np.zeros(self_fit_width(x.shape[1], top_k))
    share = np.empty(x.shape[1])
    want, plan = x.shape[1] > 1, params.plan()
    out = np.array(
        [
            self_fit_step(state, float(t + 1), x[t], feats[t], bool(flagged[t]), WARMUP, plan, Q, share, want)
            for t in range(len(x))
        ]
    )
    return out, state


@pytest.mark.parametrize("features", [1, 3])
def test_the_online_fit_equals_the_offline_fit_of_the_same_rows(features: int) -> None:
    x = _series(0, WARMUP + FIT + HELD + 200, features)
    out, state = _online(x, np.zeros(len(x), bool))
    feats = _features(x, 32)
    fit, held, after = (
        slice(WARMUP, WARMUP + FIT),
        slice(WARMUP + FIT, WARMUP + FIT + HELD),
        slice(WARMUP + FIT + HELD, None),
    )
    mu, icov = ridged_mean_icov(x[fit])
    wmu, wicov = ridged_mean_icov(feats[fit])
    raw, win = _t2(x[held] - mu, icov), _t2(feats[held] - wmu, wicov)
    c_raw, c_win = np.quantile(raw, Q) + 1e-12, np.quantile(win, Q) + 1e-12
    c = np.quantile(np.maximum(raw / c_raw, win / c_win), Q) + 1e-12
    np.testing.assert_allclose(state[2:5], [c_raw, c_win, c], rtol=1e-9)
    expected = np.maximum(_t2(x[after] - mu, icov) / c_raw, _t2(feats[after] - wmu, wicov) / c_win) / c
    np.testing.assert_allclose(out[after], expected, rtol=1e-9)
    assert not out[: after.start].any()  # nothing before the reference is frozen


def test_flagged_events_are_left_out_of_the_fit() -> None:
    x = _series(1, WARMUP + FIT + HELD + 400, 1)
    flagged = np.zeros(len(x), bool)
    flagged[WARMUP + 100 : WARMUP + 300] = True  # 200 events the forecaster flags, inside the fit phase
    x[WARMUP + 100 : WARMUP + 300] += 50.0
    _, state = _online(x, flagged)
    clean = np.delete(x, np.s_[WARMUP + 100 : WARMUP + 300], axis=0)
    feats = _features(x, 32)
    kept = np.delete(feats, np.s_[WARMUP + 100 : WARMUP + 300], axis=0)
    mu, _ = ridged_mean_icov(clean[WARMUP : WARMUP + FIT])
    assert state[5] == pytest.approx(mu[0]) and state[0] == -1.0  # -1: the final reference (one stage here)
    assert kept.shape[0] == clean.shape[0]


def test_a_fault_after_the_freeze_stays_flagged_and_does_not_move_the_reference() -> None:
    weights = ModelWeights.random(ModelConfig(hidden_size=8), seed=0)
    scorer = build_scorer(weights, max_streams=2)
    assert isinstance(scorer, EnvelopedDetector)
    n = WARMUP + scorer.self_fit.fit_events + scorer.self_fit.held_events
    x = _series(2, n + 1500, 1)[:, 0]
    x[n + 500 : n + 1000] += 3.0  # a level shift of several sigma lasting 500 events
    scores = np.concatenate([scorer.step(["new"] * 100, np.arange(s, s + 100.0), x[s : s + 100]).scores
                             for s in range(0, len(x), 100)])  # fmt: skip
    frozen = scorer.table.columns[SELF_COLUMN][0].copy()
    assert (scores[n + 550 : n + 1000] >= 0.99).mean() > 0.9  # the shift stays flagged: it is not absorbed
    assert (scores[n + 1200 :] >= 0.99).mean() < 0.1  # and back to normal after it
    scorer.step(["new"] * 100, np.arange(len(x), len(x) + 100.0), np.full(100, 9.0, np.float32))
    np.testing.assert_array_equal(scorer.table.columns[SELF_COLUMN][0], frozen)  # frozen for good


def test_the_state_budget_and_the_quantile_check() -> None:
    one = build_scorer(ModelWeights.random(ModelConfig(), seed=0), max_streams=1)  # rnnwatch train's defaults
    assert one.table.row_nbytes <= 1024
    with pytest.raises(EnvelopeError, match="top_k"):
        SelfFitParams(held_events=5000).check_quantile(0.005)
    with pytest.raises(EnvelopeError, match="top_k"):
        SelfFitParams(final_held_events=5000).check_quantile(0.005)
    SelfFitParams(final_fit_events=0, final_held_events=5000).check_quantile(0.005)  # one stage: not read
    with pytest.raises(EnvelopeError, match="final_skip_ratio"):
        SelfFitParams(final_skip_ratio=0.5)
