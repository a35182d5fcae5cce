"""Offline evaluation of detectors on the Numenta Anomaly Benchmark (corpus loading, NAB scoring, baselines)."""

from rnncore.errors import RnnCoreError


class EvaluationError(RnnCoreError, ValueError):
    """A benchmark corpus, label file or detector output is malformed; the message names the file or field."""


__all__ = ["EvaluationError"]
