"""Per-feature contributions (reconstruction-based): for a correlated 8-sensor stream a fault on one sensor puts
that sensor first, the shares sum to 1, a single-feature stream has none, and a self-fitted stream has them once
its reference is frozen."""

from __future__ import annotations

import numpy as np
import pytest

from rnncore.contract import EventRecord
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.scorer import build_scorer
from rnncore.stages.envelope import EnvelopeParams, fit_envelope
from rnncore.stages.selffit import contributions

F = 8


def _rig(seed: int, n: int) -> np.ndarray:
    """Eight sensors driven by two shared factors with fixed gains, plus small independent noise."""
    gains = np.random.default_rng(7).normal(0, 1, (2, F))
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    factors = np.stack([np.sin(2 * np.pi * t / 60.0), np.cumsum(rng.normal(0, 0.05, n)) * 0.2], axis=1)
    return factors @ gains + rng.normal(0, 0.05, (n, F))


def _scores(scorer: object, key: str, x: np.ndarray, t0: float) -> tuple[np.ndarray, np.ndarray]:
    scores, shares = [], []
    for s in range(0, x.shape[0], 50):
        result = scorer.step([key] * len(x[s : s + 50]), t0 + s + np.arange(len(x[s : s + 50])), x[s : s + 50])  # type: ignore[attr-defined]
        scores.append(result.scores)
        shares.append(result.contributions)
    return np.concatenate(scores), np.concatenate(shares)


@pytest.mark.parametrize("kind", ["level_shift", "broken_corr", "frozen"])
def test_a_fault_on_one_sensor_puts_that_sensor_first(kind: str) -> None:
    train, test = _rig(0, 3000), _rig(1, 1200)
    s, e, j = 500, 800, 5
    sd = train[:, j].std()
    if kind == "level_shift":
        test[s:e, j] += 1.0 * sd
    elif kind == "broken_corr":
        test[s:e, j] = np.random.default_rng(3).permutation(test[s:e, j])
    else:
        test[s:e, j] = test[s, j]
    envelope = fit_envelope([EventRecord("rig", float(t), tuple(r)) for t, r in enumerate(train.tolist())])
    scorer = build_scorer(ModelWeights.random(ModelConfig(n_features=F, hidden_size=8), seed=0), envelope)
    scores, shares = _scores(scorer, "rig", test, 1e6)
    assert shares.shape == (1200, F) and np.allclose(shares.sum(axis=1), 1.0, atol=1e-5)
    flagged = np.flatnonzero(scores[s:e] >= 0.99) + s
    assert flagged.size > 50
    top = np.argmax(shares[flagged], axis=1)
    assert np.mean(top == j) > 0.8, np.bincount(top, minlength=F)


def test_no_contributions_for_one_feature_and_nan_before_a_self_fitted_reference() -> None:
    one = build_scorer(ModelWeights.random(ModelConfig(hidden_size=8), seed=0))
    assert one.step(["a"], [0.0], [1.0]).contributions is None
    scorer = build_scorer(ModelWeights.random(ModelConfig(n_features=F, hidden_size=8), seed=0))  # no training refs
    frozen_at = EnvelopeParams().warmup + scorer.self_fit.fit_events + scorer.self_fit.held_events  # none flagged
    x = _rig(2, frozen_at + 200)
    _, shares = _scores(scorer, "new", x, 0.0)
    assert np.isnan(shares[:frozen_at]).all()
    assert np.allclose(shares[-100:].sum(axis=1), 1.0, atol=1e-5)


def test_a_contribution_is_the_fall_of_the_distance_when_that_feature_is_reconstructed() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    icov = np.linalg.inv(a @ a.T + np.eye(4))
    d = rng.normal(size=4)
    falls = []
    for j in range(4):  # brute force: the best value of feature j given the others, and the T² it leaves
        grid = d[j] + np.linspace(-20, 20, 400001)
        trial = np.repeat(d[None], grid.size, axis=0)
        trial[:, j] = grid
        falls.append(float(d @ icov @ d) - float(np.einsum("ij,jk,ik->i", trial, icov, trial).min()))
    out = np.empty(4)
    contributions(d, icov, out)
    np.testing.assert_allclose(out, np.array(falls) / sum(falls), rtol=1e-4)
    window = np.empty(2)
    contributions(np.array([1.0, 0.0, 2.0, 0.0]), np.eye(4), window)  # [m1, m2, logv1, logv2]: both parts of 1
    np.testing.assert_allclose(window, [1.0, 0.0])
