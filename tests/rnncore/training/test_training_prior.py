"""The train-time calibration prior equals what the service path computes from the same events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnncore.calibration import ScoringParams
from rnncore.calibration_prior import PRIOR_FIELD
from rnncore.contract import EventRecord, EventStatus
from rnncore.detector import Detector
from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.envelope_file import save_envelope
from rnncore.model.weights import ModelWeights
from rnncore.scorer import load_scorer
from rnncore.stages.envelope import fit_envelope
from rnncore.training.dataset import build_dataset
from rnncore.training.prior import fit_prior, validation_streams

CONFIG = ModelConfig(cell="gru", hidden_size=8)
WEIGHTS = ModelWeights.random(CONFIG, seed=5)


def _records() -> list[EventRecord]:
    rng = np.random.default_rng(2)
    records = []
    for s, length in enumerate((700, 650, 800)):
        t = np.cumsum(rng.exponential(1.0, length))
        x = np.sin(t / (9.0 + 4 * s)) * (1 + s) + 0.2 * rng.normal(size=length)
        x[rng.random(length) < 0.01] += 4.0  # a few bumps: the tails the moments and rates must see alike
        records += [EventRecord(f"pump-{s}", float(t[k]), (float(x[k]),)) for k in range(length)]
    return records


def _independent_moments(dataset, params: ScoringParams) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """s and a on the validation events, one stream at a time, one event per call, a from the rule itself."""
    surprises, shorts = [], []
    for stream in validation_streams(dataset):
        detector = Detector(WEIGHTS, max_streams=1)
        short, n = 0.0, 0
        for k in range(len(stream.times)):
            nll = float(detector.step([stream.key], [stream.times[k]], stream.values[k : k + 1]).nll[0])
            if not np.isfinite(nll):
                continue
            s = min(max(nll, -params.max_surprise), params.max_surprise)
            short += (s - short) / min(n + 1, params.short_window)
            n = min(n + 1, params.long_window)
            if k >= stream.first_validation:
                surprises.append(s)
                shorts.append(short)
    return np.array(surprises), np.array(shorts)


def _rate(directory: Path, dataset, new_streams: bool) -> float:  # type: ignore[no-untyped-def]
    """The served scorer, loaded from the artifact as `serve` loads it, over the validation events."""
    scorer = load_scorer(directory, max_streams=8)
    assert scorer.prior is not None
    flagged = counted = 0
    for stream in validation_streams(dataset):
        key = f"fresh-{stream.key}" if new_streams else stream.key
        for k in range(stream.first_validation if new_streams else 0, len(stream.times)):
            result = scorer.step([key], [stream.times[k]], stream.values[k : k + 1])
            if k >= stream.first_validation and result.status[0] == EventStatus.OK:
                flagged += int(result.scores[0] >= 0.99)
                counted += 1
    return flagged / counted


@pytest.mark.timeout(300)
def test_the_stored_prior_is_what_the_service_path_computes(tmp_path: Path) -> None:
    records = _records()
    dataset = build_dataset(records, CONFIG, validation_fraction=0.3)
    envelope = fit_envelope(records)
    prior = fit_prior(WEIGHTS, dataset, envelope, 0.99)
    assert prior is not None and prior.streams == 3
    s, a = _independent_moments(dataset, ScoringParams())
    assert prior.events == s.size
    assert (prior.mean_surprise, prior.var_surprise) == pytest.approx((s.mean(), s.var()), rel=1e-5)
    assert (prior.mean_short, prior.var_short) == pytest.approx((a.mean(), a.var()), rel=1e-5)
    save_envelope(envelope, tmp_path)
    save_artifact(tmp_path, WEIGHTS, {PRIOR_FIELD: prior.to_dict()})  # as rnnwatch train stores it
    assert prior.false_alarm_trained == _rate(tmp_path, dataset, new_streams=False)
    assert prior.false_alarm_new == _rate(tmp_path, dataset, new_streams=True)
    assert prior.false_alarm_new is not None and prior.false_alarm_new > 0  # random weights: some flags to compare


def test_no_validation_events_no_prior() -> None:
    dataset = build_dataset(_records(), CONFIG, validation_fraction=0.0)
    assert fit_prior(WEIGHTS, dataset, None, 0.99) is None
