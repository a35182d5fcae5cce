"""The seasonal scoring pipeline: a Detector wrapped in online per-stream seasonality, novelty and refractory stages.

``ScoringPipeline.step(keys, times, values)`` has the Detector's contract (per-event status, non-finite events
rejected one by one without touching any state) and, per stream, in arrival order:

1. :mod:`rnncore.stages.seasonality`: the event's seasonal residual (value minus its causal hour-of-week/hour-of-day
   expectation) and seasonal surprise; the surprise is calibrated into a score in [0, 1] by the Detector's own
   likelihood calibration (:func:`rnncore.calibration.calibrate`, with ``seasonal_scoring``);
2. the Detector forecasts the residual (not the raw value) and scores it (``detector_scoring``);
3. ``max(detector_weight * detector score, seasonal score)`` goes through :mod:`rnncore.stages.novelty` (graded range
   novelty of the value and of its trailing mean, then the refractory filter).

Every stage's per-stream state lives in extra columns of the Detector's state table, in the same row as the
recurrent state, so eviction, snapshots and restores cover all of it (a bare Detector's snapshot does not fit a
pipeline and is refused by the schema check). This is issue 6's NAB-tuned detector (``--pipeline seasonal``);
its defaults were chosen on NAB itself, and ``rnnwatch bench nab`` no longer scores it (it scores the default
``detector`` path). ``StepResult.nll/mean/scale`` are the Detector's, of the residual, not of the value.
Single-value streams only (F = 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnncore.calibration import STATS_COLUMN, ScoringParams, calibrate
from rnncore.detector import Detector, StepResult
from rnncore.errors import BatchShapeError, DetectorError, IncompatibleModelError
from rnncore.model.weights import ModelWeights
from rnncore.stages import novelty, seasonality
from rnncore.stages.novelty import NoveltyParams
from rnncore.stages.seasonality import SeasonalityParams
from rnncore.state.table import EventStatus, StateTable

__all__ = ["PipelineSettings", "ScoringPipeline"]

SEASON_SCORE_COLUMN = "season_score_stats"  # float32 [7]: calibration of the seasonal surprise
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _nab_detector_scoring() -> ScoringParams:
    return ScoringParams(warmup_events=150, long_window=8000, outlier_sigmas=20.0, tail_floor=1e-100)


def _nab_seasonal_scoring() -> ScoringParams:
    return ScoringParams(short_window=5, warmup_events=150, long_window=8000, outlier_sigmas=20.0, tail_floor=1e-100)


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """Every stage's parameters; the defaults are the ones chosen on NAB (issue 6)."""

    detector_scoring: ScoringParams = field(default_factory=_nab_detector_scoring)
    seasonality: SeasonalityParams = field(default_factory=SeasonalityParams)
    seasonal_scoring: ScoringParams = field(default_factory=_nab_seasonal_scoring)
    # the Detector's calibration judges the NLL (quadratic in the error), the seasonal one |z|: the Detector's
    # score is overconfident beside it and is scaled by this before the max
    detector_weight: float = 0.6
    novelty: NoveltyParams = field(default_factory=NoveltyParams)

    def __post_init__(self) -> None:
        if not 0.0 <= self.detector_weight <= 1.0:
            raise DetectorError(f"detector_weight must be in [0, 1], got {self.detector_weight}")

    def state_schema(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        """The pipeline's per-stream columns beside the Detector's."""
        return {
            **seasonality.seasonality_schema(),
            SEASON_SCORE_COLUMN: ((7,), np.dtype(np.float32)),
            **novelty.novelty_schema(self.novelty),
        }

    def bytes_per_stream(self) -> int:
        """Bytes of the pipeline's own per-stream columns (beside the Detector's recurrent and score state)."""
        return sum(
            int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            for shape, dtype in self.state_schema().values()
        )


class ScoringPipeline:
    """Seasonal residual -> Detector -> merge with seasonal surprise and novelty -> refractory, per stream, online."""

    def __init__(
        self,
        weights: ModelWeights,
        settings: PipelineSettings | None = None,
        *,
        max_streams: int = 1_000_000,
        idle_ttl_seconds: float | None = None,
    ) -> None:
        self.settings = settings if settings is not None else PipelineSettings()
        if weights.config.n_features != 1:
            raise DetectorError(
                f"the seasonal pipeline scores single-value streams; this model has F={weights.config.n_features} "
                "(use the bare Detector: rnnwatch score --pipeline detector)"
            )
        self._schema = self.settings.state_schema()
        self.detector = Detector(
            weights,
            max_streams=max_streams,
            idle_ttl_seconds=idle_ttl_seconds,
            scoring=self.settings.detector_scoring,
            extra_state=self._schema,
        )

    # ------------------------------------------------------------------ the Detector's facade
    @property
    def weights(self) -> ModelWeights:
        """The weights currently in use."""
        return self.detector.weights

    @property
    def n_features(self) -> int:
        """Values per event (always 1)."""
        return 1

    @property
    def max_streams(self) -> int:
        """State table capacity."""
        return self.detector.max_streams

    @property
    def idle_ttl_seconds(self) -> float | None:
        """Idle time after which :meth:`evict_idle` forgets a stream by default."""
        return self.detector.idle_ttl_seconds

    @property
    def n_streams(self) -> int:
        """Streams currently holding a state row."""
        return self.detector.n_streams

    @property
    def state_bytes(self) -> int:
        """Estimated bytes of per-stream state, the pipeline's columns included."""
        return self.detector.state_bytes

    @property
    def pipeline_bytes_per_stream(self) -> int:
        """Bytes per stream of the pipeline's own columns (beside the Detector's recurrent and score state)."""
        return self.settings.bytes_per_stream()

    @property
    def model_version(self) -> str | None:
        """``weights.metadata['version']`` of the model in use, if it has one."""
        return self.detector.model_version

    @property
    def table(self) -> StateTable:
        """The shared per-stream state table (Detector and pipeline columns)."""
        return self.detector.table

    def snapshot(self, keys: Iterable[str] | None = None) -> bytes:
        """Bit-exact snapshot of the given streams' state (all when None), every stage included."""
        return self.detector.snapshot(keys)

    def restore(self, data: bytes) -> int:
        """Load a pipeline snapshot (a bare Detector's is refused: its columns differ); returns streams loaded."""
        return self.detector.restore(data)

    def evict_idle(self, now: float, ttl_seconds: float | None = None) -> int:
        """Forget streams with no event since ``now - ttl`` (ttl defaults to ``idle_ttl_seconds``)."""
        return self.detector.evict_idle(now, ttl_seconds)

    def reload(self, weights: ModelWeights) -> None:
        """Hot-swap the Detector's model, keeping every stream's state (see :meth:`Detector.reload`)."""
        if weights.config.n_features != 1:
            raise IncompatibleModelError(
                f"the seasonal pipeline scores single-value streams; offered F={weights.config.n_features}"
            )
        self.detector.reload(weights)

    # ------------------------------------------------------------------ stepping
    def step(self, keys: Sequence[object], times: Any, values: Any) -> StepResult:
        """Score a batch in arrival order (see the module docstring); scores are float64 [B] in [0, 1]."""
        keys = keys if isinstance(keys, list) else list(keys)
        B = len(keys)
        times = np.ascontiguousarray(times, dtype=np.float64)
        x = np.asarray(values, dtype=np.float64)
        column = x.ndim == 2 and x.shape[1:] == (1,)  # [B, 1] in: mean/scale come back [B, 1]
        if column:
            x = x[:, 0]
        if x.ndim != 1 or x.shape != (B,) or times.shape != (B,):
            raise BatchShapeError(
                f"{B} keys need times [{B}] and values [{B}] or [{B}, 1]; got {times.shape}, {np.shape(values)}"
            )
        x = np.ascontiguousarray(x)
        with np.errstate(over="ignore"):  # what the Detector sees: a value beyond float32's range is rejected
            x32 = x.astype(np.float32)
        rows, status = self.detector.assign_rows(keys, times, x32)
        columns = self.table.columns
        ok = status == EventStatus.OK
        residual, surprise = seasonality.seasonality_step(self.settings.seasonality, columns, rows, times, x, ok)
        seasonal = np.zeros(B, dtype=np.float32)
        calibrate(
            self.settings.seasonal_scoring, {STATS_COLUMN: columns[SEASON_SCORE_COLUMN]}, rows,
            surprise.astype(np.float32), (~ok).astype(np.int8), seasonal,
        )  # fmt: skip
        model_input = np.where(ok, np.clip(residual, -_FLOAT32_MAX, _FLOAT32_MAX), x32).astype(np.float32)
        result = self.detector.step_rows(rows, status, times, model_input)
        accepted = result.status == EventStatus.OK
        merged = np.maximum(self.settings.detector_weight * result.scores.astype(np.float64), seasonal)
        scores = novelty.novelty_step(self.settings.novelty, columns, rows, x, merged, accepted & ok)
        mean, scale = (result.mean[:, None], result.scale[:, None]) if column else (result.mean, result.scale)
        return StepResult(scores=scores, nll=result.nll, mean=mean, scale=scale, status=result.status)
