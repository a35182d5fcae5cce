"""The cross-sensor reference: each feature estimated from the others, fitted on normal rows and frozen."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rnncore.errors import EnvelopeError
from rnncore.model.config import ModelConfig
from rnncore.model.envelope_file import load_envelope, save_envelope
from rnncore.model.weights import ModelWeights
from rnncore.stages.crossfit import CROSS_COLUMN, CrossFit, cross_ratios
from rnncore.stages.envelope import fit_envelope
from rnncore.stages.enveloped import EnvelopedDetector
from stream.data.eventlog import EventRecord


def _plant(seed: int, n: int, broken_from: int | None = None) -> np.ndarray:
    """Three sensors driven by one load that wanders over its whole range: a temperature that follows the load
    with a lag, and a power that follows it at once. From ``broken_from`` on the temperature runs 0.15 hotter than
    its load explains (3 noise sigmas): inside its normal range, off its normal relation."""
    rng = np.random.default_rng(seed)
    load = np.cumsum(rng.normal(0, 0.05, n))
    load = 2.0 * (load - load.min()) / (np.ptp(load) + 1e-9) - 1.0
    temp = np.empty(n)
    level = load[0]
    for t in range(n):
        level += (load[t] - level) / 20.0
        temp[t] = level
    x = np.column_stack([load, temp, 0.8 * load]) + rng.normal(0, 0.05, (n, 3))
    if broken_from is not None:
        x[broken_from:, 1] += 0.15
    return x


def _records(key: str, x: np.ndarray) -> list[EventRecord]:
    return [EventRecord(key, float(i), tuple(row)) for i, row in enumerate(x.tolist())]


def _scored(det: EnvelopedDetector, key: str, x: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    scores, shares = [], []
    for s in range(0, len(x), batch):
        chunk = x[s : s + batch]
        result = det.step([key] * len(chunk), s + np.arange(len(chunk), dtype=float), chunk)
        scores.append(result.scores)
        shares.append(result.contributions)
    return np.concatenate(scores), np.concatenate(shares)


def test_a_broken_relation_inside_the_normal_range_is_flagged_and_names_its_sensor() -> None:
    envelope = fit_envelope(_records("pump", _plant(0, 4000)))
    assert envelope.cross is not None and envelope.cross.streams == 1
    test = _plant(1, 3000, broken_from=1500)
    inside = (test[1500:, 1] >= _plant(0, 4000)[:, 1].min()) & (test[1500:, 1] <= _plant(0, 4000)[:, 1].max())
    assert inside.mean() > 0.5  # most broken rows are within the temperature's normal range
    weights = ModelWeights.random(ModelConfig(n_features=3, hidden_size=8), seed=0)
    with_cross = EnvelopedDetector(weights, envelope, max_streams=4)
    without = EnvelopedDetector(weights, dataclasses.replace(envelope, cross=None), max_streams=4)
    scores, shares = _scored(with_cross, "pump", test, 128)
    plain, _ = _scored(without, "pump", test, 128)
    flagged = scores >= 0.99
    assert flagged[1600:].mean() > 0.9  # the broken relation stays flagged while it lasts
    assert (plain >= 0.99)[1600:].mean() < 0.5  # where the envelope alone misses most of it
    assert flagged[100:1500].mean() < 0.25  # the normal rows before it (a load wandering past its training range)
    late = np.flatnonzero(flagged[1600:]) + 1600
    assert np.mean(np.argmax(shares[late], axis=1) == 1) > 0.8  # the temperature is named


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_the_online_step_equals_the_fitting_trace_whatever_the_batching(batch: int) -> None:
    envelope = fit_envelope(_records("pump", _plant(0, 2000)))
    assert envelope.cross is not None
    test = _plant(2, 600, broken_from=300)
    weights = ModelWeights.random(ModelConfig(n_features=3, hidden_size=8), seed=0)
    det = EnvelopedDetector(weights, envelope, max_streams=4)
    _scored(det, "pump", test, batch)
    offline = cross_ratios(envelope.cross, test, 0, envelope.params.warmup)
    rows, _ = det.table.rows_for(["pump"])
    state = det.table.columns[CROSS_COLUMN][rows[0]]
    assert state[-1] == len(test)  # every event went through the step once
    assert offline[-1] > 1.0 and offline[: envelope.params.warmup].max() == 0.0
    # the last event's ratio from the stored state equals the offline trace's
    F = 3
    d = state[F : 2 * F] - envelope.cross.rmu[0]
    online_last = float(d @ envelope.cross.ricov[0] @ d) / envelope.cross.cut[0]
    assert online_last == pytest.approx(offline[-1], rel=1e-9)


def test_a_single_feature_model_has_no_cross_state_and_scores_as_before() -> None:
    x = np.random.default_rng(0).normal(0, 1, (1000, 1))
    envelope = fit_envelope(_records("s", x))
    assert envelope.cross is not None and envelope.cross.streams == 0
    det = EnvelopedDetector(ModelWeights.random(ModelConfig(n_features=1, hidden_size=8), seed=0), envelope)
    assert CROSS_COLUMN not in det.table.columns


def test_the_envelope_file_keeps_the_cross_references_and_refuses_hostile_ones(tmp_path) -> None:
    envelope = fit_envelope(_records("pump", _plant(0, 2000)))
    save_envelope(envelope, tmp_path)
    loaded = load_envelope(tmp_path)
    assert loaded is not None and loaded.cross is not None
    np.testing.assert_array_equal(loaded.cross.beta, envelope.cross.beta)
    assert loaded.cross.params == envelope.cross.params
    # a file written before the cross references loads without them
    save_envelope(dataclasses.replace(envelope, cross=None), tmp_path / "old")
    old = load_envelope(tmp_path / "old")
    assert old is not None and old.cross is None
    # values that would poison every score are refused with the fix
    with pytest.raises(EnvelopeError, match="retrain"):
        dataclasses.replace(envelope.cross, beta=np.full_like(envelope.cross.beta, np.nan))
    with pytest.raises(EnvelopeError, match="must be float64"):
        CrossFit(envelope.cross.params, envelope.cross.dmu, envelope.cross.dsd, envelope.cross.beta[:, :1],
                 envelope.cross.rmu, envelope.cross.ricov, envelope.cross.cut)  # fmt: skip


@pytest.mark.parametrize("bad", [np.inf, np.nan, -1.0, 2.5])
def test_a_hostile_cross_window_in_the_envelope_file_is_refused_with_the_fix(tmp_path, bad: float) -> None:
    envelope = fit_envelope(_records("pump", _plant(0, 2000)))
    save_envelope(envelope, tmp_path)
    path = tmp_path / "envelope.npz"
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["cross_params"] = np.array([bad, 8.0, 0.1])
    np.savez(path, **arrays)  # no model.json beside it: no digest to check, the content alone is judged
    with pytest.raises(EnvelopeError, match="retrain|must be"):
        load_envelope(tmp_path)


def test_a_multi_feature_envelope_weighs_spread_not_level_and_a_single_feature_one_keeps_its_level() -> None:
    """Levels of a multi-feature stream are left to the cross-sensor reference: its own envelope does not flag
    the plant run at loads beyond its training range (every sensor following the load as in training), a frozen
    sensor there it still flags; a single-feature stream keeps its raw level term. (The cross-sensor estimate, a
    ridge regression, itself flags part of such a far extrapolation: it is not part of this check.)"""
    train = _plant(0, 4000)
    envelope = dataclasses.replace(fit_envelope(_records("pump", train)), cross=None)
    weights = ModelWeights.random(ModelConfig(n_features=3, hidden_size=8), seed=0)
    det = EnvelopedDetector(weights, envelope, max_streams=4)
    rng = np.random.default_rng(5)
    load = 1.8 + 0.3 * np.sin(np.arange(2000) / 50.0)  # above the training's whole range [-1, 1]
    temp = np.empty(2000)
    level = load[0]
    for t in range(2000):
        level += (load[t] - level) / 20.0
        temp[t] = level
    test = np.column_stack([load, temp, 0.8 * load]) + rng.normal(0, 0.05, (2000, 3))
    assert test[:, 0].min() > train[:, 0].max()
    test[1200:, 2] = test[1200, 2]  # the power reading freezes
    scores, shares = _scored(det, "pump", test, 100)
    assert (scores[100:1200] >= 0.99).mean() < 0.05
    assert (scores[1250:] >= 0.99).mean() > 0.9
    assert np.mean(np.argmax(shares[1250:], axis=1) == 2) > 0.9  # the frozen reading is named
    one = fit_envelope(_records("load", train[:, :1]))
    single = EnvelopedDetector(ModelWeights.random(ModelConfig(hidden_size=8), seed=0), one, max_streams=4)
    far = np.concatenate([single.step(["load"] * 100, s + np.arange(100.0), test[s : s + 100, :1]).scores
                          for s in range(0, 1200, 100)])  # fmt: skip
    assert (far[100:1200] >= 0.99).mean() > 0.9  # one sensor alone: beyond its training range is an alarm
