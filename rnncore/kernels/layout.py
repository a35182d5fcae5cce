"""The per-row state columns the step kernels read and write (a schema for the state table), and their outputs.

Each column is allocated as ``np.zeros((capacity, *shape), dtype)``; a zeroed row is a fresh stream
(``count == 0``). Everything is float32 except ``last_time`` (float64 seconds), ``count`` (int64 events
seen) and the ``tile_mark`` scratch byte, which is 1 only while its row is inside a kernel tile and
lets the kernel spot a stream repeated within a tile in O(1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncore.model.attention import ring_schema
from rnncore.model.config import ModelConfig

RECURRENT = "recurrent"  # float32 (L, P, H): per layer, h (and c for an LSTM)
NORM = "norm"  # float32 (2, F): running mean, running variance of the raw values
FORECAST = "forecast"  # float32 (2, F): pending forecast (mu, sigma) in normalised units
LAST_TIME = "last_time"  # float64 (): time of the last accepted event
COUNT = "count"  # int64 (): accepted events so far
TILE_MARK = "tile_mark"  # uint8 (): scratch, 0 between kernel calls
PEAK_VAR = "peak_var"  # float32 (F,): the largest running variance so far (the Detector's magnitude bound; the
# kernels do not touch it: the Detector raises it after each step, rnncore.detector.MagnitudeBound reads it)

COLUMN_NAMES: tuple[str, ...] = (RECURRENT, NORM, FORECAST, LAST_TIME, COUNT, TILE_MARK, PEAK_VAR)

Schema = dict[str, tuple[tuple[int, ...], np.dtype]]


def state_schema(config: ModelConfig) -> Schema:
    """Column name -> (shape after the row axis, dtype) of every per-stream column the kernels need."""
    F = config.n_features
    schema: Schema = {
        RECURRENT: ((config.num_layers, config.state_planes, config.hidden_size), np.dtype(np.float32)),
        NORM: ((2, F), np.dtype(np.float32)),
        FORECAST: ((2, F), np.dtype(np.float32)),
        LAST_TIME: ((), np.dtype(np.float64)),
        COUNT: ((), np.dtype(np.int64)),
        TILE_MARK: ((), np.dtype(np.uint8)),
        PEAK_VAR: ((F,), np.dtype(np.float32)),
    }
    schema.update(ring_schema(config))  # attention head only: the ring of rnncore.model.attention (empty otherwise)
    return schema


def bytes_per_row(config: ModelConfig) -> int:
    """Raw bytes of one stream's kernel state (all columns of the schema)."""
    return sum(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for shape, dtype in state_schema(config).values())


def allocate_columns(config: ModelConfig, capacity: int) -> dict[str, np.ndarray]:
    """Zeroed columns for ``capacity`` fresh streams, as the state table allocates them (tests, benchmarks)."""
    return {name: np.zeros((capacity, *shape), dtype) for name, (shape, dtype) in state_schema(config).items()}


@dataclass(frozen=True)
class StepOutput:
    """Preallocated per-event outputs: ``nll`` [B], forecast ``mean``/``scale`` [B, F] in original units
    after the event, ``status`` [B] (0 ok, 1 invalid input; invalid events get NaN outputs)."""

    nll: np.ndarray  # float32 [B]
    mean: np.ndarray  # float32 [B, F]
    scale: np.ndarray  # float32 [B, F]
    status: np.ndarray  # int8 [B]

    @classmethod
    def empty(cls, batch: int, n_features: int) -> StepOutput:
        """Uninitialised outputs for ``batch`` events of ``n_features`` values (the kernel writes every slot)."""
        return cls(
            nll=np.empty(batch, dtype=np.float32),
            mean=np.empty((batch, n_features), dtype=np.float32),
            scale=np.empty((batch, n_features), dtype=np.float32),
            status=np.empty(batch, dtype=np.int8),
        )
