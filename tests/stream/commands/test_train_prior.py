"""`rnnwatch train` stores the calibration prior, prints it with the stated false-alarm rates, and serve uses it."""

from __future__ import annotations

import json

import pytest

from rnncore.calibration import ScoringParams
from rnncore.calibration_prior import PRIOR_FIELD, CalibrationPrior
from rnncore.scorer import load_scorer
from tests.stream.commands.small_training import SmallStore

pytestmark = pytest.mark.timeout(240)


def test_train_stores_and_prints_the_prior_and_a_served_model_uses_it(small_store: SmallStore) -> None:
    printed = small_store.train(streams=3, events=1200)
    stored = json.loads((small_store.out / "current" / "model.json").read_text())[PRIOR_FIELD]
    prior = CalibrationPrior.from_dict(stored)
    assert prior.streams == 3 and prior.events > 500 and prior.threshold == 0.99
    assert prior.false_alarm_trained is not None and prior.false_alarm_new is not None
    line = next(text for text in printed.splitlines() if text.startswith("calibration prior from"))
    assert f"{prior.false_alarm_new:.3%} of the same events replayed as new streams" in line
    warm = ScoringParams().prior_warmup_events + 1
    assert f"first {warm} events score 0 (without a prior: 201)" in line
    scorer = load_scorer(small_store.out)
    assert scorer.prior == prior and scorer.warmup_events == warm  # type: ignore[union-attr]
