"""`rnnwatch train`'s calibration prior: computed on the validation events, stored in ``model.json``, one line.

The numbers come from :func:`rnncore.training.prior.fit_prior` (the online Detector path, no torch); the threshold
they are stated at is `serve`'s default ``anomaly_threshold``.
"""

from __future__ import annotations

from typing import Any

from rnncore.calibration_prior import PRIOR_FIELD
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import Envelope
from rnncore.training.dataset import Dataset


def store_prior(weights: ModelWeights, dataset: Dataset, envelope: Envelope | None, metadata: dict[str, Any]) -> str:
    """Fit the prior, put it into ``metadata`` (for ``save_artifact``) and say what it is and what it states."""
    from rnncore.calibration import ScoringParams
    from rnncore.training.prior import fit_prior
    from stream.commands.config_flags import flag_for

    threshold = float(flag_for("anomaly_threshold").default)
    prior = fit_prior(weights, dataset, envelope, threshold)
    if prior is None:
        return (
            "calibration prior: none (no validation event with a surprise); a new stream's first "
            f"{ScoringParams().warmup_events + 1} events score 0, as with a model from before the prior"
        )
    metadata[PRIOR_FIELD] = prior.to_dict()
    params = ScoringParams()
    return (
        f"{prior.describe()}; a new stream's statistics start at it (weight {params.prior_events} events) and its "
        f"first {params.prior_warmup_events + 1} events score 0 (without a prior: {params.warmup_events + 1})"
    )
