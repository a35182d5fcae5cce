"""The two-stage online fit: a provisional reference scores from the first stage's end, the second stage's replaces
it exactly at its last held-out event; a short file never gets there (scored as by the provisional alone); what
the second stage skips; the state it costs; and a dropped reference (refit) goes through both stages again."""

from __future__ import annotations

import numpy as np
import pytest

from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.scorer import build_scorer
from rnncore.stages.contributions import ridged_mean_icov
from rnncore.stages.envelope import REF_COLUMN, EnvelopeParams, _features, fit_envelope
from rnncore.stages.enveloped import AlarmParams, EnvelopedDetector
from rnncore.stages.selffit import SELF_COLUMN, SelfFitParams, self_fit_step, self_fit_width
from stream.data.eventlog import EventRecord
from stream.evaluation.rigs.experiments import EXPERIMENT_ROWS

WARMUP, WINDOW, Q = 32, 8, 0.995
FIT1, HELD1, FIT2, HELD2 = 100, 50, 300, 150
TWO = SelfFitParams(fit_events=FIT1, held_events=HELD1, final_fit_events=FIT2, final_held_events=HELD2,
                    final_skip_ratio=np.inf)  # fmt: skip
ONE = SelfFitParams(fit_events=FIT1, held_events=HELD1, final_fit_events=0)
SECOND = WARMUP + FIT1 + HELD1  # the first event of the second stage (no event skipped)
SWITCH = SECOND + FIT2 + HELD2  # the first event the final reference scores


def _series(seed: int, n: int, features: int) -> np.ndarray:
    """A shared seasonal factor plus noise whose amplitude grows: later rows show variety the first did not."""
    rng = np.random.default_rng(seed)
    factor = np.sin(2 * np.pi * np.arange(n) / 50.0)[:, None] * rng.uniform(0.5, 1.5, features)
    return factor * np.linspace(0.6, 1.4, n)[:, None] + rng.normal(0, 0.2, (n, features))


def _online(x: np.ndarray, flagged: np.ndarray, params: SelfFitParams) -> tuple[np.ndarray, np.ndarray]:
    """``r / c`` per event from the Numba step and the final state."""
    feats = _features(x, WINDOW)
    state = np.zeros(self_fit_width(x.shape[1], params.top_k))
    share, plan, want = np.empty(x.shape[1]), params.plan(), x.shape[1] > 1
    out = [self_fit_step(state, t + 1.0, x[t], feats[t], bool(flagged[t]), WARMUP, plan, Q, share, want)
           for t in range(len(x))]  # fmt: skip
    return np.array(out), state


def _reference(x: np.ndarray, fit: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, ...]:
    """The offline fit (training's arithmetic) of the rows ``fit``, cut on the rows ``held``."""
    feats = _features(x, WINDOW)
    mu, icov = ridged_mean_icov(x[fit])
    wmu, wicov = ridged_mean_icov(feats[fit])

    def t2(d: np.ndarray, ic: np.ndarray) -> np.ndarray:
        return np.asarray(np.einsum("ij,jk,ik->i", d, ic, d))

    raw, win = t2(x[held] - mu, icov), t2(feats[held] - wmu, wicov)
    c_raw, c_win = np.quantile(raw, Q) + 1e-12, np.quantile(win, Q) + 1e-12
    c = np.quantile(np.maximum(raw / c_raw, win / c_win), Q) + 1e-12
    ratio = np.maximum(t2(x - mu, icov) / c_raw, t2(feats - wmu, wicov) / c_win) / c
    return mu, ratio


@pytest.mark.parametrize("features", [1, 3])
def test_the_second_stage_replaces_the_provisional_reference_at_its_last_held_out_event(features: int) -> None:
    x = _series(0, SWITCH + 300, features)
    none = np.zeros(len(x), bool)
    two, state = _online(x, none, TWO)
    one, _ = _online(x, none, ONE)
    _, provisional = _reference(x, np.arange(WARMUP, WARMUP + FIT1), np.arange(WARMUP + FIT1, SECOND))
    mu, final = _reference(x, np.arange(SECOND, SECOND + FIT2), np.arange(SECOND + FIT2, SWITCH))
    assert not two[:SECOND].any()  # nothing before the provisional reference is frozen
    np.testing.assert_allclose(two[SECOND:SWITCH], provisional[SECOND:SWITCH], rtol=1e-9)
    np.testing.assert_allclose(two[SWITCH:], final[SWITCH:], rtol=1e-9)
    np.testing.assert_array_equal(two[:SWITCH], one[:SWITCH])  # up to the switch: the one-stage fit, exactly
    assert not np.allclose(two[SWITCH:], one[SWITCH:], rtol=0.05)  # the growing variety: a wider reference
    np.testing.assert_allclose(state[5 : 5 + features], mu, rtol=1e-9)
    assert state[0] == -1.0  # final: frozen for good
    x[-50:] += 30.0  # a fault after the switch
    np.testing.assert_array_equal(_online(x, none, TWO)[1], state)  # does not move the final reference


def test_a_short_experiment_file_never_reaches_the_second_stage_and_scores_as_before() -> None:
    defaults = SelfFitParams()
    first, final = defaults.frozen_after()
    assert EnvelopeParams().warmup + first <= 350  # the provisional one inside the shortest normal head
    assert EnvelopeParams().warmup + final > EXPERIMENT_ROWS[1] + 300  # far past the longest file's end
    weights = ModelWeights.random(ModelConfig(n_features=8, hidden_size=8), seed=0)
    x = _series(1, EXPERIMENT_ROWS[1], 8)
    x[400:, 3] += 2.0  # a sustained fault on one sensor after the normal head, to the file's end
    scores = {}
    for name, fit in (("two", None), ("one", SelfFitParams(final_fit_events=0))):
        scorer = build_scorer(weights) if fit is None else EnvelopedDetector(weights, self_fit=fit)
        results = [scorer.step(["exp"] * 50, s + np.arange(50.0), x[s : s + 50]) for s in range(0, len(x), 50)]
        scores[name] = np.concatenate([r.scores for r in results])
        row = scorer.table.columns[SELF_COLUMN][0]
        assert row[4] > 0.0 and (row[0] >= 0.0) == (name == "two")  # provisional frozen; the second stage runs
    np.testing.assert_array_equal(scores["two"], scores["one"])
    assert (scores["two"][420:] >= 0.99).mean() > 0.9


@pytest.mark.parametrize("skip", [1.0, 4.0, np.inf])
def test_the_second_stage_skips_the_detectors_flags_and_what_lies_beyond_the_skip_ratio(skip: float) -> None:
    params = SelfFitParams(fit_events=FIT1, held_events=HELD1, final_fit_events=FIT2, final_held_events=HELD2,
                           final_skip_ratio=skip)  # fmt: skip
    x = _series(2, SWITCH + 2000, 1)  # skip 1 leaves out ~35 % of the events: the stage takes longer
    x[SECOND + 50 : SECOND + 90] += 12.0  # far beyond the provisional cut, not flagged by the Detector
    flagged = np.zeros(len(x), bool)
    flagged[SECOND + 150 : SECOND + 170] = True  # flagged by the Detector
    ratio, state = _online(x, flagged, params)
    candidates = np.flatnonzero((np.arange(len(x)) >= SECOND) & ~flagged & (ratio < skip))
    fitted = candidates[:FIT2]  # the second stage fits the first FIT2 events it does not skip
    mu, final = _reference(x, fitted, candidates[FIT2 : FIT2 + HELD2])
    switch = candidates[FIT2 + HELD2 - 1] + 1
    np.testing.assert_allclose(state[5], mu[0], rtol=1e-9)
    np.testing.assert_allclose(ratio[switch:], final[switch:], rtol=1e-9)
    shifted = np.isin(np.arange(SECOND + 50, SECOND + 90), fitted)
    assert not np.isin(np.arange(SECOND + 150, SECOND + 170), fitted).any()
    assert shifted.all() if skip == np.inf else not shifted.any()
    t = np.arange(len(x))
    edge = (ratio >= 1.0) & (ratio < 4.0) & ~flagged & (t >= SECOND) & (t < SECOND + FIT2)
    assert edge.any()  # the provisional reference flags some normal variety ...
    assert np.isin(np.flatnonzero(edge), fitted).all() == (skip > 1.0)  # ... which only skip 1 leaves out


def test_the_second_stage_state_width() -> None:
    assert self_fit_width(1, 8) * 8 == 424 and self_fit_width(8, 8) * 8 == 5800  # +64 B and +2,752 B
    one = build_scorer(ModelWeights.random(ModelConfig(), seed=0), max_streams=1)  # rnnwatch train's defaults
    assert one.table.row_nbytes <= 1024
    assert one.table.columns[SELF_COLUMN].shape[1] == self_fit_width(1, SelfFitParams().top_k)


def test_a_dropped_reference_self_fits_again_through_both_stages() -> None:
    rng = np.random.default_rng(3)
    train = np.sin(np.arange(3000) / 8.0)[:, None] + rng.normal(0, 0.1, (3000, 1))
    envelope = fit_envelope([EventRecord("moved", float(t), tuple(r)) for t, r in enumerate(train.tolist())])
    weights = ModelWeights.random(ModelConfig(n_features=1, hidden_size=8), seed=0)
    detector = EnvelopedDetector(weights, envelope, max_streams=2, alarm=AlarmParams(refit_window=400, rank_events=0))
    x = np.sin(np.arange(4000) / 8.0)[:, None] + rng.normal(0, 0.1, (4000, 1))
    x[500:] += 5.0  # a new normal level: the trained reference is dropped some hundred events later
    scores = np.concatenate([detector.step(["moved"] * 100, 1e6 + s + np.arange(100.0), x[s : s + 100]).scores
                             for s in range(0, len(x), 100)])  # fmt: skip
    assert detector.table.columns[REF_COLUMN][0] == -1
    row = detector.table.columns[SELF_COLUMN][0]
    assert row[0] == -1.0 and row[4] > 0.0  # both stages done: the final self-fitted reference scores
    assert row[5] == pytest.approx(5.0, abs=0.1)  # fitted on the new level
    assert (scores[500:700] >= 0.99).all() and (scores[-300:] >= 0.99).mean() < 0.05
