"""The one place that decides what scores an event: ``build_scorer`` (weights and the artifact's envelope) and
``load_scorer`` (an artifact directory).

``rnnwatch serve`` (``stream.service.app.detector_factory``), ``rnnwatch score``, the demo (it runs the service)
and the library all build their scorer here, so they score with the same stages and the same defaults:

* ``pipeline="detector"`` (the default): the :class:`~rnncore.detector.Detector` with the per-stream envelope of
  :mod:`rnncore.stages.enveloped`: the training reference of each stream in the artifact's ``envelope.npz``
  (fitted by `rnnwatch train`), and for every other stream one fitted online from its own early history
  (:mod:`rnncore.stages.selffit`);
* ``pipeline="seasonal"``: :class:`~rnncore.stages.pipeline.ScoringPipeline`, the NAB-tuned seasonal pipeline
  around the Detector (single-value streams; kept while it is measured against the default).
"""

from __future__ import annotations

from pathlib import Path

from rnncore.calibration import ScoringParams
from rnncore.detector import Detector
from rnncore.errors import ScorerError
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import Envelope
from rnncore.stages.enveloped import EnvelopedDetector
from rnncore.stages.pipeline import ScoringPipeline

__all__ = ["PIPELINES", "build_scorer", "check_scorer", "load_scorer"]

PIPELINES: tuple[str, ...] = ("detector", "seasonal")


def check_scorer(weights: ModelWeights, envelope: Envelope | None, pipeline: str = "detector") -> None:
    """Raise ScorerError when :func:`build_scorer` would refuse these inputs (a caller can check once, up front,
    and build scorers later, e.g. one per Kafka partition)."""
    if pipeline not in PIPELINES:
        raise ScorerError(f"unknown scoring pipeline {pipeline!r}: choose one of {', '.join(PIPELINES)}")
    features = weights.config.n_features
    if pipeline == "seasonal" and features != 1:
        raise ScorerError(
            f"scoring_pipeline 'seasonal' scores single-value streams; this model has {features} features: "
            "use scoring_pipeline 'detector' or a single-feature model"
        )
    if pipeline == "detector" and envelope is not None and envelope.n_features != features:
        raise ScorerError(
            f"envelope of {envelope.n_features} features beside a model of {features}: retrain both with rnnwatch train"
        )


def build_scorer(
    weights: ModelWeights,
    envelope: Envelope | None = None,
    *,
    pipeline: str = "detector",
    max_streams: int = 1_000_000,
    idle_ttl_seconds: float | None = None,
    warmup_events: int | None = None,
    prior_warmup_events: int | None = None,
) -> Detector | ScoringPipeline:
    """The scorer for these weights: see the module docstring. ``envelope`` (None: no stream has a training
    reference) is ignored by ``seasonal``; ``warmup_events`` and ``prior_warmup_events`` (None: the calibration's
    defaults, 200 and 30) are how many surprises a new stream's forecast score stays 0 (the detector pipeline),
    without and with the calibration prior ``weights.metadata`` carries (`rnnwatch train` stores one)."""
    check_scorer(weights, envelope, pipeline)
    if pipeline == "seasonal":
        return ScoringPipeline(weights, max_streams=max_streams, idle_ttl_seconds=idle_ttl_seconds)
    given = {"warmup_events": warmup_events, "prior_warmup_events": prior_warmup_events}
    chosen = {name: value for name, value in given.items() if value is not None}
    scoring = ScoringParams(**chosen) if chosen else None
    return EnvelopedDetector(
        weights, envelope, max_streams=max_streams, idle_ttl_seconds=idle_ttl_seconds, scoring=scoring
    )


def load_scorer(
    directory: str | Path,
    *,
    pipeline: str = "detector",
    max_streams: int = 1_000_000,
    idle_ttl_seconds: float | None = None,
) -> Detector | ScoringPipeline:
    """:func:`build_scorer` for a model artifact directory (`rnnwatch train --out`): its weights and envelope."""
    from rnncore.model.artifact import load_artifact
    from rnncore.model.envelope_file import load_envelope

    weights = load_artifact(directory)
    envelope = load_envelope(directory) if pipeline == "detector" else None
    return build_scorer(
        weights, envelope, pipeline=pipeline, max_streams=max_streams, idle_ttl_seconds=idle_ttl_seconds
    )
