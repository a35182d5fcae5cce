"""rnncore: per-stream recurrent state, forecast and calibrated anomaly score, without Kafka, files or clocks.

    from rnncore import ModelConfig, ModelWeights, build_scorer
    scorer = build_scorer(ModelWeights.random(ModelConfig(cell="gru", hidden_size=32)))  # or load_scorer("model/")
    result = scorer.step(["pump-1", "pump-2"], [0.0, 0.0], [3.2, 7.1])

What happens to one event is written once in ``rnncore.contract``. Names are loaded on first use (PEP 562),
so ``import rnncore.model.config`` does not compile the kernels.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Detector": "rnncore.detector",
    "IncompatibleModelError": "rnncore.detector",
    "BatchShapeError": "rnncore.detector",
    "EventRecord": "rnncore.contract",
    "EventStatus": "rnncore.contract",
    "StepResult": "rnncore.contract",
    "StreamScorer": "rnncore.contract",
    "ModelConfig": "rnncore.model.config",
    "ModelWeights": "rnncore.model.weights",
    "load_artifact": "rnncore.model.artifact",
    "save_artifact": "rnncore.model.artifact",
    "ScoringPipeline": "rnncore.stages.pipeline",
    "build_scorer": "rnncore.scorer",
    "load_scorer": "rnncore.scorer",
    "RnnCoreError": "rnncore.errors",
}

__all__ = [
    "BatchShapeError",
    "Detector",
    "EventRecord",
    "EventStatus",
    "IncompatibleModelError",
    "ModelConfig",
    "ModelWeights",
    "RnnCoreError",
    "ScoringPipeline",
    "StepResult",
    "StreamScorer",
    "build_scorer",
    "load_artifact",
    "load_scorer",
    "save_artifact",
]

if TYPE_CHECKING:
    from rnncore.contract import EventRecord, EventStatus, StepResult, StreamScorer
    from rnncore.detector import Detector
    from rnncore.errors import BatchShapeError, IncompatibleModelError, RnnCoreError
    from rnncore.model.artifact import load_artifact, save_artifact
    from rnncore.model.config import ModelConfig
    from rnncore.model.weights import ModelWeights
    from rnncore.scorer import build_scorer, load_scorer
    from rnncore.stages.pipeline import ScoringPipeline


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access."""
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'rnncore' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
