"""Public batched step: validate arrays once, then run the tiled Numba kernel (see ``_tile``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnncore.kernels import layout
from rnncore.kernels._tile import SHAPE_MISMATCH, advance_kernel
from rnncore.kernels.errors import KernelInputError
from rnncore.kernels.layout import COUNT, FORECAST, LAST_TIME, NORM, RECURRENT, TILE_MARK, StepOutput
from rnncore.kernels.packing import PackedModel


def _expect(array: np.ndarray, name: str, dtype: type, shape: tuple[int, ...]) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
        got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise KernelInputError(f"{name} must be a {np.dtype(dtype)} array of shape {shape}, got {got}")
    if not array.flags.c_contiguous:
        raise KernelInputError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if not array.flags.writeable:
        raise KernelInputError(f"{name} is read-only; the kernel takes writable arrays: pass a copy (np.array(...))")


def _column(columns: Mapping[str, np.ndarray], name: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = columns[name]
    except KeyError:
        raise KernelInputError(f"state column {name!r} is missing; allocate columns from state_schema()") from None
    if array.ndim == 0:
        raise KernelInputError(f"state column {name!r} needs a row axis")
    _expect(array, f"state column {name!r}", dtype, (array.shape[0], *shape))
    return array


def _explain(
    model: PackedModel,
    columns: Mapping[str, np.ndarray],
    rows: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    out: StepOutput,
    cause: Exception | None = None,
) -> KernelInputError:
    """The slow path after a refused call: find the offending array and describe it (else quote ``cause``)."""
    config = model.config
    F = config.n_features
    B = rows.shape[0] if isinstance(rows, np.ndarray) and rows.ndim == 1 else -1
    _expect(rows, "rows", np.int64, (B,))
    _expect(times, "times", np.float64, (B,))
    _expect(values, "values", np.float32, (B, F))
    _expect(out.nll, "out.nll", np.float32, (B,))
    _expect(out.mean, "out.mean", np.float32, (B, F))
    _expect(out.scale, "out.scale", np.float32, (B, F))
    _expect(out.status, "out.status", np.int8, (B,))
    planes = (config.num_layers, config.state_planes, config.hidden_size)
    capacity = _column(columns, layout.RECURRENT, np.float32, planes).shape[0]
    for name, dtype, shape in (
        (layout.NORM, np.float32, (2, F)),
        (layout.FORECAST, np.float32, (2, F)),
        (layout.LAST_TIME, np.float64, ()),
        (layout.COUNT, np.int64, ()),
        (layout.TILE_MARK, np.uint8, ()),
    ):
        if _column(columns, name, dtype, shape).shape[0] != capacity:
            raise KernelInputError(f"state column {name!r} has {columns[name].shape[0]} rows, recurrent {capacity}")
    detail = f": {str(cause).splitlines()[0]}" if cause is not None else " (shape, dtype or layout)"
    return KernelInputError(f"arrays refused by the kernel{detail}")


def advance(
    model: PackedModel,
    columns: Mapping[str, np.ndarray],
    rows: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    out: StepOutput,
) -> None:
    """Apply each event (row ``rows[i]``, time ``times[i]``, values ``values[i]``) in arrival order, updating
    the state columns in place and filling ``out``; equals feeding the events one at a time.

    Arrays must be C-contiguous with the dtypes of ``state_schema`` / ``StepOutput``; the kernel checks
    shapes itself, so a B=1 call costs little more than the Numba dispatch.
    """
    if model.config.attention_window:  # attention head (issue 9): the per-event kernel in _attention
        from rnncore.kernels._attention import advance_attention

        code = advance_attention(model, columns, rows, times, values, out)
    else:
        try:
            code = advance_kernel(
                model.weights, model.index, model.scalars,
                columns[RECURRENT], columns[NORM], columns[FORECAST], columns[LAST_TIME], columns[COUNT],
                columns[TILE_MARK], rows, times, values, out.nll, out.mean, out.scale, out.status,
            )  # fmt: skip
        except (KeyError, TypeError) as error:
            raise _explain(model, columns, rows, times, values, out, error) from error
    if code == SHAPE_MISMATCH:
        raise _explain(model, columns, rows, times, values, out)
    if code:
        capacity = columns[layout.RECURRENT].shape[0]
        raise KernelInputError(f"rows[{code - 1}] = {rows[code - 1]} is outside the state table (0..{capacity - 1})")
