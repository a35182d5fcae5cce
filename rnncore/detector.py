"""The library facade: per-stream recurrent state, forecast and calibrated anomaly score for a batch of events.

``Detector.step(keys, times, values)`` maps keys to state rows, advances the rows with the Numba kernels,
turns each forecast error into a score in [0, 1] and returns everything per event, with a status code for
events it rejected (non-finite value, stream table full, bad key, a value past the ``MagnitudeBound``). Rejected
events change no state and do not disturb the other events of the batch; only the rows of accepted events change.
When the weights carry a calibration prior (``model.json``'s ``calibration_prior``, stored by `rnnwatch train`),
every new stream's calibration starts at it and scores after ``ScoringParams.prior_warmup_events`` events instead of
``warmup_events`` (:mod:`rnncore.calibration_prior`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import rnncore.calibration as calibration
from rnncore import kernels
from rnncore.calibration_prior import CalibrationPrior, prior_of
from rnncore.contract import EventStatus, StepResult, rarity_of, status_reason
from rnncore.errors import BatchShapeError, DetectorError, IncompatibleModelError
from rnncore.kernels.layout import COUNT, NORM, PEAK_VAR
from rnncore.model.bidirectional import ensure_causal
from rnncore.model.weights import ModelWeights
from rnncore.state.table import StateTable, columns_from_schema

__all__ = [
    "Detector",
    "EventStatus",
    "MagnitudeBound",
    "StepResult",
    "status_reason",
]


class SchemaConflictError(DetectorError):
    """The kernel and scoring state schemas use the same column name."""


@dataclass(frozen=True)
class MagnitudeBound:
    """Values that would wreck a stream's state are rejected (``EventStatus.MAGNITUDE``) before they touch it.

    One value of 1e20 in a stream of N(0, 1) values moved its running mean to ~1e17 and its variance near the
    float32 limit, which then hid every later anomaly of the stream (and survived restarts via the changelog). An
    event is rejected when any value has ``|v| > absolute`` (its square nears float32's limit: no first event may
    bring one), or, once the stream has ``min_count`` events and a variance above 0, ``|v - mean| > k * max(sd,
    floor_rel * |mean|, floor_abs)`` with the stream's running mean before the batch and, as sd, the largest the
    stream has had (``PEAK_VAR``): the running variance decays during a constant run (a counter idle at 0 for
    30k events shrank a 5e6-level stream's sd to 0.3), and the stream's own level coming back must not look like a
    million of its scales (it was dead-lettered from then on). A stream without a scale yet (constant so far, e.g.
    an idle byte counter at 0) gets the absolute bound only; the floors let a nearly constant one move (at 0 by
    +-1e6, at 5,000 by +-5e6). Anomalies are thousands of times smaller than the bound (a spike of 50 sd scores
    1.0). A rejected event teaches the stream nothing: values that stay past the bound (a level moved by more than
    a million of the largest scale the stream has shown) are rejected for as long as they stay."""

    k: float = 1e6
    floor_rel: float = 1e-3
    floor_abs: float = 1.0
    absolute: float = 1e18
    min_count: int = 10

    def beyond_absolute(self, values: np.ndarray) -> np.ndarray:
        """Per event of ``values`` [B, F]: any value with ``|v| > absolute``."""
        return np.asarray((np.abs(values) > self.absolute).any(axis=1))

    def beyond_scale(
        self, values: np.ndarray, norm: np.ndarray, count: np.ndarray, peak_var: np.ndarray | None = None
    ) -> np.ndarray:
        """Per event: the stream (running ``norm`` [B, 2, F] = mean, variance; ``count`` [B]; the largest variance
        it has had, ``peak_var`` [B, F]) is past ``min_count`` and a value of a feature with a variance above 0 lies
        more than ``k`` scales from its mean."""
        mean, var = norm[:, 0, :], norm[:, 1, :]
        if peak_var is not None:
            var = np.maximum(var, peak_var)
        scale = np.maximum(np.sqrt(np.maximum(var, 0)), np.maximum(self.floor_rel * np.abs(mean), self.floor_abs))
        far = (var > 0) & (np.abs(values - mean) > self.k * scale)
        return np.asarray((count >= self.min_count) & far.any(axis=1))


def _state_schema(
    weights: ModelWeights,
    params: calibration.ScoringParams,
    extra: Mapping[str, tuple[tuple[int, ...], Any]] | None = None,
) -> dict[str, tuple[tuple[int, ...], Any]]:
    extra = extra or {}
    kernel_schema = kernels.state_schema(weights.config)
    score_schema = calibration.score_schema(params)
    clash = sorted(set(kernel_schema) & set(score_schema))
    if clash:
        raise SchemaConflictError(f"kernel and scoring state both define columns {clash}")
    clash = sorted((set(kernel_schema) | set(score_schema)) & set(extra))
    if clash:
        raise SchemaConflictError(f"extra_state columns {clash} are already defined by the kernel or scoring state")
    return {**kernel_schema, **score_schema, **extra}


class Detector:
    """Streaming anomaly detector over up to ``max_streams`` keyed streams sharing one recurrent model."""

    def __init__(
        self,
        weights: ModelWeights,
        *,
        max_streams: int = 1_000_000,
        idle_ttl_seconds: float | None = None,
        scoring: calibration.ScoringParams | None = None,
        extra_state: Mapping[str, tuple[tuple[int, ...], Any]] | None = None,
        magnitude: MagnitudeBound | None = MagnitudeBound(),  # noqa: B008 (frozen: one shared default is safe)
    ) -> None:
        """``extra_state``: more per-stream columns ``{name: (shape, dtype)}`` in the same rows (zeroed for a new
        stream, evicted, snapshotted and restored with the rest), for a scoring stage around the Detector.
        ``magnitude``: the bound past which an event is rejected as ``MAGNITUDE`` (None: no bound)."""
        ensure_causal(weights.config, "the online Detector (rnnwatch serve, rnnwatch score, rnnwatch bench nab)")
        self.max_streams = max_streams
        self.idle_ttl_seconds = idle_ttl_seconds
        self.scoring = scoring if scoring is not None else calibration.ScoringParams()
        self.magnitude = magnitude
        self._extra_state = dict(extra_state or {})
        self._weights = weights
        self._prior = prior_of(weights.metadata)
        self._model = kernels.pack(weights)
        self._table = StateTable(_state_schema(weights, self.scoring, self._extra_state), max_streams=max_streams)

    # ------------------------------------------------------------------ properties
    @property
    def weights(self) -> ModelWeights:
        """The weights currently in use."""
        return self._weights

    @property
    def prior(self) -> CalibrationPrior | None:
        """The calibration prior of the weights in use (None: new streams learn from nothing, ``warmup_events``)."""
        return self._prior

    @property
    def warmup_events(self) -> int:
        """Accepted events a new stream's forecast score stays 0 (its first surprise comes with its second event)."""
        scoring = self.scoring
        return 1 + (scoring.warmup_events if self._prior is None else scoring.prior_warmup_events)

    @property
    def n_features(self) -> int:
        """Values per event (F)."""
        return self._weights.config.n_features

    @property
    def n_streams(self) -> int:
        """Streams currently holding a state row."""
        return len(self._table)

    @property
    def state_bytes(self) -> int:
        """Estimated bytes of per-stream state (rows plus keys and maps)."""
        return self._table.resident_bytes()

    @property
    def model_version(self) -> str | None:
        """``weights.metadata['version']`` of the model in use, if it has one."""
        version = self._weights.metadata.get("version")
        return None if version is None else str(version)

    @property
    def table(self) -> StateTable:
        """The per-stream state table (for inspection and tests; do not write to it while stepping)."""
        return self._table

    # ------------------------------------------------------------------ stepping
    def step(self, keys: Sequence[object], times: Any, values: Any) -> StepResult:
        """Advance each event's stream in arrival order and score the event; see the module docstring."""
        keys = keys if isinstance(keys, list) else list(keys)
        times, values, flat = self._validated(keys, times, values)
        rows, status = self._rows(keys, times, values)
        return self._scored(rows, status, times, values, flat)

    def assign_rows(self, keys: Sequence[object], times: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """The state rows and status :meth:`step` gives a batch (new streams get a row; non-finite events, bad
        keys and a full table get row -1 and a non-zero status), for a stage that works on the rows first and
        then calls :meth:`step_rows`."""
        keys = keys if isinstance(keys, list) else list(keys)
        times, values, _ = self._validated(keys, times, values)
        return self._rows(keys, times, values)

    def step_rows(self, rows: np.ndarray, status: np.ndarray, times: Any, values: Any) -> StepResult:
        """:meth:`step` for a batch whose ``rows``/``status`` came from :meth:`assign_rows` (no eviction or
        restore in between): the same result without looking the keys up again."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        status = np.array(status, dtype=np.int8)  # a copy: the result's status is written into it
        if rows.ndim != 1 or status.shape != rows.shape:
            raise BatchShapeError(f"rows and status must be [B], got {rows.shape} and {status.shape}")
        times, values, flat = self._validated(range(rows.shape[0]), times, values)
        ok = rows[status == EventStatus.OK]
        if ok.size and (ok.min() < 0 or ok.max() >= self.max_streams):
            raise BatchShapeError(f"rows of accepted events must lie in [0, {self.max_streams}): use assign_rows()")
        return self._scored(rows, status, times, values, flat)

    def _rows(self, keys: list[object], times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B = values.shape[0]
        finite = np.isfinite(values).all(axis=1) & np.isfinite(times)
        bound = self.magnitude
        huge = bound.beyond_absolute(values) if bound is not None else None
        if finite.all() and (huge is None or not huge.any()):
            rows, status = self._table.rows_for(keys)
        else:  # rejected events never reach the table, so they cannot claim a row
            status = np.full(B, EventStatus.INVALID_VALUE, dtype=np.int8)
            if huge is not None:
                status[finite & huge] = EventStatus.MAGNITUDE
            rows = np.full(B, -1, dtype=np.int64)
            kept = np.flatnonzero(finite & (True if huge is None else ~huge))
            rows[kept], status[kept] = self._table.rows_for([keys[i] for i in kept.tolist()])
        if bound is not None:
            self._reject_beyond_scale(bound, rows, status, values)
        return rows, status

    def _reject_beyond_scale(
        self, bound: MagnitudeBound, rows: np.ndarray, status: np.ndarray, values: np.ndarray
    ) -> None:
        """Mark ``MAGNITUDE`` (row -1) the accepted events too far from their stream's running mean (in place)."""
        ok = np.flatnonzero(status == EventStatus.OK)
        if not ok.size:
            return
        r = rows[ok]
        columns = self._table.columns
        beyond = bound.beyond_scale(values[ok], columns[NORM][r], columns[COUNT][r], columns[PEAK_VAR][r])
        if beyond.any():
            bad = ok[beyond]
            status[bad] = EventStatus.MAGNITUDE
            rows[bad] = -1

    def _scored(
        self, rows: np.ndarray, status: np.ndarray, times: np.ndarray, values: np.ndarray, flat: bool
    ) -> StepResult:
        B, F = values.shape
        accepted = np.flatnonzero(status == EventStatus.OK)
        scores = np.zeros(B, dtype=np.float32)
        nll = np.full(B, np.nan, dtype=np.float32)
        mean = np.full((B, F), np.nan, dtype=np.float32)
        scale = np.full((B, F), np.nan, dtype=np.float32)
        rarity = np.zeros(B)
        if accepted.size == B and B:
            out = self._advance(rows, times, values, scores, rarity)
            nll[:], mean[:], scale[:] = out.nll, out.mean.reshape(B, F), out.scale.reshape(B, F)
            status = np.maximum(status, out.status.astype(np.int8))
        elif accepted.size:
            sub_scores, sub_rarity = np.zeros(accepted.size, dtype=np.float32), np.zeros(accepted.size)
            out = self._advance(rows[accepted], times[accepted], values[accepted], sub_scores, sub_rarity)
            scores[accepted], rarity[accepted] = sub_scores, sub_rarity
            nll[accepted] = out.nll
            mean[accepted] = out.mean.reshape(accepted.size, F)
            scale[accepted] = out.scale.reshape(accepted.size, F)
            status[accepted] = np.maximum(status[accepted], out.status.astype(np.int8))
        if flat:
            mean, scale = mean[:, 0], scale[:, 0]
        rarity = np.maximum(rarity, rarity_of(scores))  # exact at the threshold despite the float32 rounding
        return StepResult(scores=scores, nll=nll, mean=mean, scale=scale, status=status, rarity=rarity)

    def _advance(
        self, rows: np.ndarray, times: np.ndarray, values: np.ndarray, scores: np.ndarray, rarity: np.ndarray
    ) -> kernels.StepOutput:
        out = kernels.StepOutput.empty(rows.size, values.shape[1])
        columns = self._table.columns
        kernels.advance(self._model, columns, rows, times, np.ascontiguousarray(values), out)
        _raise_peak(columns, rows)
        calibration.calibrate(self.scoring, columns, rows, out.nll, out.status, scores, rarity, self._prior)
        return out

    def _validated(self, keys: Sequence[object], times: Any, values: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """times as float64 [B], values as C-contiguous float32 [B, F], and whether values came in as [B].

        Read-only inputs (a pandas column under copy-on-write, a memory map) are copied once: the kernels'
        compiled signatures take writable arrays.
        """
        B, F = len(keys), self.n_features
        times = np.require(times, dtype=np.float64, requirements=("C", "W"))
        values = np.asarray(values, dtype=np.float32)
        flat = values.ndim == 1
        if flat and F != 1:
            raise BatchShapeError(f"values of shape {values.shape} need a feature axis: this model has F={F}")
        if flat:
            values = values[:, None]
        if values.ndim != 2 or values.shape[1] != F:
            raise BatchShapeError(f"values must be [B] or [B, {F}] for this model, got shape {values.shape}")
        if times.shape != (B,) or values.shape[0] != B:
            raise BatchShapeError(f"{B} keys need times [{B}] and values [{B}, {F}]; got {times.shape}, {values.shape}")
        return times, np.require(values, requirements=("C", "W")), flat

    # ------------------------------------------------------------------ state management
    def snapshot(self, keys: Iterable[str] | None = None) -> bytes:
        """Bit-exact snapshot of the given streams' state (all when None), for checkpoints and hand-over."""
        return self._table.export_rows(keys)

    def restore(self, data: bytes) -> int:
        """Load a snapshot (overwriting streams already present); returns the number of streams loaded."""
        return self._table.import_rows(data)

    def evict_idle(self, now: float, ttl_seconds: float | None = None) -> int:
        """Forget streams with no event since ``now - ttl`` (ttl defaults to ``idle_ttl_seconds``)."""
        ttl = ttl_seconds if ttl_seconds is not None else self.idle_ttl_seconds
        if ttl is None:
            raise DetectorError("evict_idle needs ttl_seconds: none given and the detector has no idle_ttl_seconds")
        return self._table.evict_idle(now, ttl)

    def reload(self, weights: ModelWeights) -> None:
        """Hot-swap the model, keeping every stream's state; raises IncompatibleModelError and keeps the old one
        when the new weights need a different state layout (or look ahead: a bidirectional model)."""
        ensure_causal(weights.config, "the online Detector (model reload)")
        if not self._weights.is_compatible_with(weights):
            old, new = self._weights.config, weights.config
            raise IncompatibleModelError(
                "new weights cannot take over the stream state: "
                f"{old.cell} H={old.hidden_size} L={old.num_layers} F={old.n_features} "
                f"attention_window={old.attention_window} in use, "
                f"{new.cell} H={new.hidden_size} L={new.num_layers} F={new.n_features} "
                f"attention_window={new.attention_window} offered"
            )
        if set(columns_from_schema(_state_schema(weights, self.scoring, self._extra_state))) != set(self._table.specs):
            raise IncompatibleModelError("new weights need different state columns than the running model")
        model = kernels.pack(weights)  # may raise: the old model stays in place
        prior = prior_of(weights.metadata)
        self._weights, self._model, self._prior = weights, model, prior


def _raise_peak(columns: Mapping[str, np.ndarray], rows: np.ndarray) -> None:
    """Keep ``PEAK_VAR`` at the largest running variance each advanced stream has had (at batch ends)."""
    peak = columns[PEAK_VAR]
    peak[rows] = np.maximum(peak[rows], columns[NORM][rows, 1, :])
