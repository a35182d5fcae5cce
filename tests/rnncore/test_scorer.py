"""``rnncore.scorer``: the one factory picks the enveloped Detector (trained or self-fitted references) or the
seasonal pipeline, and refuses inputs that do not fit together with one actionable message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnncore import build_scorer, load_scorer
from rnncore.contract import EventRecord
from rnncore.errors import ScorerError
from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.envelope_file import save_envelope
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import Envelope, EnvelopeParams, fit_envelope
from rnncore.stages.enveloped import EnvelopedDetector
from rnncore.stages.pipeline import ScoringPipeline

WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=1)


def _envelope(features: int = 1) -> Envelope:
    rng = np.random.default_rng(0)
    records = [EventRecord("a", float(t), tuple(rng.normal(size=features).tolist())) for t in range(600)]
    return fit_envelope(records, EnvelopeParams(min_history=0))  # a short history: no minimum here


def test_the_factory_picks_the_scorer_by_envelope_and_pipeline() -> None:
    envelope = _envelope()
    untrained = build_scorer(WEIGHTS, max_streams=4, idle_ttl_seconds=5.0)  # every stream fits its own envelope
    assert isinstance(untrained, EnvelopedDetector) and not untrained.envelope.index
    assert untrained.max_streams == 4 and untrained.idle_ttl_seconds == 5.0
    trained = build_scorer(WEIGHTS, envelope, max_streams=4)
    assert isinstance(trained, EnvelopedDetector) and trained.envelope is envelope
    assert trained.table.specs == untrained.table.specs  # one state layout with or without envelope.npz
    seasonal = build_scorer(WEIGHTS, envelope, pipeline="seasonal", max_streams=4)
    assert isinstance(seasonal, ScoringPipeline)


def test_the_factory_refuses_what_does_not_fit_together() -> None:
    with pytest.raises(ScorerError, match="unknown scoring pipeline"):
        build_scorer(WEIGHTS, pipeline="magic")
    wide = ModelWeights.random(ModelConfig(hidden_size=4, n_features=2), seed=0)
    with pytest.raises(ScorerError, match="single-value"):
        build_scorer(wide, pipeline="seasonal")
    with pytest.raises(ScorerError, match="retrain both"):
        build_scorer(wide, _envelope(1))


def test_load_scorer_reads_the_artifact_and_its_envelope(tmp_path: Path) -> None:
    save_artifact(tmp_path, WEIGHTS)
    bare = load_scorer(tmp_path)
    assert isinstance(bare, EnvelopedDetector) and not bare.envelope.index
    save_envelope(_envelope(), tmp_path)  # then model.json again: the envelope is inside the artifact's checksum
    save_artifact(tmp_path, WEIGHTS)
    scorer = load_scorer(tmp_path, max_streams=3)
    assert isinstance(scorer, EnvelopedDetector) and scorer.max_streams == 3
    assert isinstance(load_scorer(tmp_path, pipeline="seasonal"), ScoringPipeline)


def test_the_warm_up_is_settable_and_scores_start_after_it() -> None:
    import numpy as np

    short = build_scorer(WEIGHTS, None, warmup_events=5)
    assert short.scoring.warmup_events == 5 and build_scorer(WEIGHTS).scoring.warmup_events == 200
    values = np.sin(np.arange(40.0) / 3.0)[:, None]
    scores = np.concatenate([short.step(["a"], [float(t)], values[t : t + 1]).scores for t in range(40)])
    assert np.all(scores[:5] == 0.0) and np.any(scores[5:] > 0.0)
