"""Numba step kernels: per-stream state schema, weight packing and the batched RNN/GRU/LSTM step + head.

``state_schema(config)`` says which per-row columns to allocate, ``pack(weights)`` prepares a model, and
``advance(model, columns, rows, times, values, out)`` applies a batch of events exactly as the per-event
contract says (``rnncore/contract.py``; ``tests/reference.py`` holds the slow obvious version tested against).
"""

from rnncore.kernels import _blas
from rnncore.kernels._tile import STATUS_INVALID, STATUS_OK, TILE
from rnncore.kernels.errors import KernelInputError
from rnncore.kernels.layout import COLUMN_NAMES, StepOutput, bytes_per_row, state_schema
from rnncore.kernels.packing import PackedModel, pack
from rnncore.kernels.step import advance

_blas.pin_scipy_blas_to_one_thread()

__all__ = [
    "COLUMN_NAMES",
    "STATUS_INVALID",
    "STATUS_OK",
    "TILE",
    "KernelInputError",
    "PackedModel",
    "StepOutput",
    "advance",
    "bytes_per_row",
    "pack",
    "state_schema",
]
