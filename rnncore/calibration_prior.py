"""The calibration's prior: what `rnnwatch train` learnt about the forecast surprise on held-out normal data.

A new stream's calibration (:mod:`rnncore.calibration`) judges each surprise against the stream's own long-run
distributions. Learnt from nothing, those need ``WARMUP_EVENTS`` (200) events before a score means anything, so
every new (or evicted) stream scored 0 for its first 200 events. `rnnwatch train` runs its validation events
through the product's own Detector path and stores the population distribution of the calibration's inputs
(the clipped surprise and its short average: mean and variance over all validation events of all streams) in
``model.json`` (field :data:`PRIOR_FIELD`, covered by the artifact checksum). A Detector whose weights carry it
starts every new stream's long-run statistics at the prior with a pseudo-count of ``PRIOR_EVENTS`` events (its
own events take over as ``1 / (n + 1)``) and scores from its ``PRIOR_WARMUP_EVENTS + 1``-th surprise on (the
kernel's running normalisation needs a few events too). Without a prior (an artifact from before, or
``ModelWeights.random``) nothing changes: ``WARMUP_EVENTS``.

The field also states the default threshold's per-event false-alarm rate on those held-out events
(``false_alarm``), which `rnnwatch train` prints and the service exports. No numba here: the service's
configuration imports the defaults below (one declaration for the library and `serve`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rnncore.errors import ArtifactError

__all__ = [
    "PRIOR_EVENTS",
    "PRIOR_FIELD",
    "PRIOR_WARMUP_EVENTS",
    "WARMUP_EVENTS",
    "CalibrationPrior",
    "check_prior",
    "prior_of",
]

WARMUP_EVENTS = 200  # surprises a stream's calibration learns from before it scores, without a prior
PRIOR_WARMUP_EVENTS = 30  # the same with the artifact's prior (chosen on TUNE splits: BENCHMARKS.md)
PRIOR_EVENTS = 50  # the prior's weight in a new stream's long-run statistics, in events (chosen on TUNE splits)
PRIOR_FIELD = "calibration_prior"  # its field in model.json
MAX_MOMENT = 1e6  # |mean| and variance above this are not a surprise distribution (clipped at 50 before)
_MOMENTS = ("surprise", "short_average")
_RATES = ("trained_streams", "new_streams")


@dataclass(frozen=True, kw_only=True)
class CalibrationPrior:
    """Population mean and variance of the clipped surprise ``s`` and of its short average ``a`` on held-out
    normal events, how many events and streams they come from, and the default threshold's false-alarm rates
    measured there: ``trained_streams`` (the served scorer on the validation events of the training streams,
    each run from its first event) and ``new_streams`` (the same events replayed as new streams, scored from
    their first events with this prior); None where not measured."""

    mean_surprise: float
    var_surprise: float
    mean_short: float
    var_short: float
    events: int
    streams: int
    threshold: float = 0.99
    false_alarm_trained: float | None = None
    false_alarm_new: float | None = None

    def __post_init__(self) -> None:
        for name in ("mean_surprise", "mean_short"):
            value = getattr(self, name)
            if not (math.isfinite(value) and abs(value) <= MAX_MOMENT):
                raise ArtifactError(
                    f"calibration prior {name} must be finite with |value| <= {MAX_MOMENT:g}, got {value}"
                )
        for name in ("var_surprise", "var_short"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= MAX_MOMENT):
                raise ArtifactError(f"calibration prior {name} must be in [0, {MAX_MOMENT:g}], got {value}")
        if self.events < 1 or self.streams < 1:
            raise ArtifactError(f"calibration prior needs >= 1 event and stream, got {self.events}, {self.streams}")
        if not 0.0 < self.threshold <= 1.0:
            raise ArtifactError(f"calibration prior threshold must be in (0, 1], got {self.threshold}")
        for rate in (self.false_alarm_trained, self.false_alarm_new):
            if rate is not None and not 0.0 <= rate <= 1.0:
                raise ArtifactError(f"calibration prior false-alarm rates must be in [0, 1], got {rate}")

    def moments(self) -> tuple[float, float, float, float]:
        """``(mean_s, var_s, mean_a, var_a)``, in the order of the calibration's state columns."""
        return self.mean_surprise, self.var_surprise, self.mean_short, self.var_short

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in ``model.json`` under :data:`PRIOR_FIELD`."""
        return {
            "surprise": {"mean": self.mean_surprise, "var": self.var_surprise},
            "short_average": {"mean": self.mean_short, "var": self.var_short},
            "events": self.events,
            "streams": self.streams,
            "false_alarm": {
                "threshold": self.threshold,
                "trained_streams": self.false_alarm_trained,
                "new_streams": self.false_alarm_new,
            },
        }

    @classmethod
    def from_dict(cls, value: Any, where: str = "model.json") -> CalibrationPrior:
        """Parse and check the stored object; ``ArtifactError`` naming the part that is missing or wrong."""
        if not isinstance(value, dict):
            raise ArtifactError(f"{where}: field {PRIOR_FIELD!r} must be an object, got {str(value)[:40]!r}; retrain")
        unknown = sorted(set(value) - {*_MOMENTS, "events", "streams", "false_alarm"})
        if unknown:
            raise ArtifactError(f"{where}: field {PRIOR_FIELD!r} has unknown parts {unknown}")
        try:
            moments = [_number(value[name][part], f"{name}.{part}") for name in _MOMENTS for part in ("mean", "var")]
            rates = value.get("false_alarm") or {}
            if not isinstance(rates, dict):
                raise TypeError("false_alarm must be an object")
            return cls(
                mean_surprise=moments[0],
                var_surprise=moments[1],
                mean_short=moments[2],
                var_short=moments[3],
                events=_count(value["events"], "events"),
                streams=_count(value["streams"], "streams"),
                threshold=_number(rates.get("threshold", 0.99), "false_alarm.threshold"),
                false_alarm_trained=_rate(rates.get("trained_streams"), "false_alarm.trained_streams"),
                false_alarm_new=_rate(rates.get("new_streams"), "false_alarm.new_streams"),
            )
        except KeyError as exc:
            raise ArtifactError(f"{where}: field {PRIOR_FIELD!r} lacks {exc}; retrain with rnnwatch train") from None
        except TypeError as exc:
            raise ArtifactError(f"{where}: field {PRIOR_FIELD!r} is mistyped ({exc}); retrain") from None
        except ArtifactError as exc:
            raise ArtifactError(f"{where}: field {PRIOR_FIELD!r} is out of range ({exc}); retrain") from None

    def describe(self) -> str:
        """One line for `rnnwatch train`'s summary."""
        rates = []
        if self.false_alarm_trained is not None:
            rates.append(f"{self.false_alarm_trained:.3%} of the training streams' validation events")
        if self.false_alarm_new is not None:
            rates.append(f"{self.false_alarm_new:.3%} of the same events replayed as new streams")
        stated = f"; score >= {self.threshold:g} on {' and '.join(rates)}" if rates else ""
        return (
            f"calibration prior from {self.events} validation events of {self.streams} streams: surprise "
            f"{self.mean_surprise:.3f} +- {math.sqrt(self.var_surprise):.3f}, short average {self.mean_short:.3f} "
            f"+- {math.sqrt(self.var_short):.3f}{stated}"
        )


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {str(value)[:40]!r}")
    return float(value)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {str(value)[:40]!r}")
    return value


def _rate(value: Any, name: str) -> float | None:
    return None if value is None else _number(value, name)


def check_prior(value: Any) -> str | None:
    """The artifact schema's check of the field: None when acceptable, else what is wrong with it."""
    try:
        CalibrationPrior.from_dict(value, "")
    except ArtifactError as exc:
        return str(exc).removeprefix(": ").removeprefix(f"field {PRIOR_FIELD!r} ")
    return None


def prior_of(metadata: Mapping[str, Any]) -> CalibrationPrior | None:
    """The prior a model's metadata carries (``ModelWeights.metadata``: the artifact's ``model.json``), or None."""
    value = metadata.get(PRIOR_FIELD)
    return None if value is None else CalibrationPrior.from_dict(value)
