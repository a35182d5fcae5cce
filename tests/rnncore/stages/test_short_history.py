"""Short histories (issue 16's short experiment files): a stream with a few hundred normal rows gets a trained
reference and a stream without one has its own frozen before a short file's fault begins, at the defaults
`rnnwatch train`, `score` and `serve` use."""

from __future__ import annotations

import numpy as np

from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.scorer import build_scorer
from rnncore.stages.envelope import EnvelopeParams, fit_envelope
from rnncore.stages.enveloped import EnvelopedDetector
from rnncore.stages.selffit import SELF_COLUMN, SelfFitParams
from stream.data.eventlog import EventRecord

F = 4
SHORT_HEAD = 350  # the shortest normal head of a short experiment file (stream.evaluation.rigs.experiments)


def _normal(seed: int, n: int) -> np.ndarray:
    gains = np.random.default_rng(99).uniform(0.5, 1.5, F)
    rng = np.random.default_rng(seed)
    factor = np.sin(2 * np.pi * np.arange(n) / 60.0 + rng.uniform(0, 6.3))
    return factor[:, None] * gains + rng.normal(0, 0.1, (n, F))


def _scores(scorer: EnvelopedDetector, key: str, x: np.ndarray, t0: float) -> np.ndarray:
    return np.concatenate(
        [scorer.step([key] * len(x[s : s + 50]), t0 + s + np.arange(len(x[s : s + 50])), x[s : s + 50]).scores
         for s in range(0, len(x), 50)]
    )  # fmt: skip


def test_the_defaults_fit_inside_a_short_files_normal_head() -> None:
    p, online = EnvelopeParams(), SelfFitParams()
    assert p.min_events() <= 200  # a trained reference from a normal head of a few hundred rows
    assert p.warmup + online.fit_events + online.held_events <= SHORT_HEAD  # a self-fit frozen before the fault


def test_a_stream_trained_on_a_short_head_gets_a_reference_that_flags_a_sustained_shift() -> None:
    head = _normal(0, 300)
    envelope = fit_envelope([EventRecord("exp", float(i), tuple(r)) for i, r in enumerate(head.tolist())])
    assert "exp" in envelope.index
    scorer = build_scorer(ModelWeights.random(ModelConfig(n_features=F, hidden_size=8), seed=0), envelope)
    assert isinstance(scorer, EnvelopedDetector)
    test = _normal(1, 600)
    test[300:, 1] += 0.8  # one sensor shifts by ~1 of its ranges' halves, for the rest of the file
    flagged = _scores(scorer, "exp", test, 300.0) >= 0.99
    assert flagged[320:].mean() > 0.9 and flagged[:300].mean() < 0.15


def test_a_stream_without_a_reference_freezes_its_own_before_a_short_files_fault() -> None:
    scorer = build_scorer(ModelWeights.random(ModelConfig(n_features=F, hidden_size=8), seed=0))
    assert isinstance(scorer, EnvelopedDetector) and not scorer.envelope.index
    x = _normal(2, 1000)
    x[SHORT_HEAD:, 2] += 0.8
    flagged = _scores(scorer, "new", x, 0.0) >= 0.99
    row = scorer.table.columns[SELF_COLUMN][0]
    assert row[4] > 0.0  # the online reference's final cut is set: frozen
    assert flagged[SHORT_HEAD + 20 :].mean() > 0.9 and flagged[:SHORT_HEAD].mean() < 0.15
