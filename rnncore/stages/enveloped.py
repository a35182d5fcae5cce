"""The Detector with a frozen per-stream operating envelope (:mod:`rnncore.stages.envelope`) beside its forecast score.

``EnvelopedDetector.step`` has the Detector's contract; each accepted event's score is
``max(Detector score, envelope score)``: the forecaster's calibrated surprise catches onsets (spikes, bursts), the
envelope, fitted on the training logs and never updated, keeps flagging what persists (level shifts, drift,
frozen sensors, sustained fault states, broken correlation). The envelope's moments live in an extra column of the
same state table, so eviction, snapshots and restores cover them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rnncore.detector import Detector, DetectorError, StepResult
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import EW_COLUMN, REF_COLUMN, Envelope, envelope_schema
from rnncore.state.table import EventStatus

__all__ = ["EnvelopedDetector"]


class EnvelopedDetector(Detector):
    """A :class:`Detector` whose scores are lifted by the stream's frozen envelope (streams seen in training)."""

    def __init__(self, weights: ModelWeights, envelope: Envelope, **kwargs: Any) -> None:
        """``kwargs`` as for :class:`Detector` (``max_streams``, ``idle_ttl_seconds``, ``scoring``)."""
        if envelope.n_features != weights.config.n_features:
            raise DetectorError(
                f"the envelope was fitted on {envelope.n_features} features, the model has "
                f"{weights.config.n_features}: retrain both with rnnwatch train"
            )
        super().__init__(weights, extra_state=envelope_schema(envelope.n_features), **kwargs)
        self.envelope = envelope

    def replace_envelope(self, envelope: Envelope) -> None:
        """Score with a new envelope (a retrained artifact), keeping every stream's EW moments; the cached
        reference indices are cleared, so each stream looks its key up in the new envelope on its next event."""
        if envelope.n_features != self.envelope.n_features:
            raise DetectorError(
                f"the new envelope has {envelope.n_features} features, the running one {self.envelope.n_features}"
            )
        self.envelope = envelope
        self.table.columns[REF_COLUMN][:] = 0

    def step(self, keys: Sequence[object], times: Any, values: Any) -> StepResult:
        """Score a batch in arrival order: the Detector's step, then the envelope over the same rows."""
        keys = keys if isinstance(keys, list) else list(keys)
        rows, status = self.assign_rows(keys, times, values)
        result = self.step_rows(rows, status, times, values)
        x = np.asarray(values, dtype=np.float64).reshape(len(keys), self.envelope.n_features)
        ok = result.status == EventStatus.OK
        columns = self.table.columns
        refs = self.envelope.row_refs(columns[REF_COLUMN], rows, ok, keys)
        ratio = self.envelope.ratios(columns[EW_COLUMN], rows, refs, ok, x)
        scores = np.where(ok, np.maximum(result.scores, self.envelope.scores(ratio)), 0.0).astype(np.float32)
        return StepResult(scores=scores, nll=result.nll, mean=result.mean, scale=result.scale, status=result.status)
