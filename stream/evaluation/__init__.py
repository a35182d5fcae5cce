"""Offline evaluation of detectors on the Numenta Anomaly Benchmark (corpus loading, NAB scoring, baselines)."""

from stream.errors import StreamError


class EvaluationError(StreamError, ValueError):
    """A benchmark corpus, label file or detector output is malformed; the message names the file or field."""


__all__ = ["EvaluationError"]
