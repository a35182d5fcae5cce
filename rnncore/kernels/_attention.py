"""The step kernel for models with an attention head: one event at a time, in arrival order.

Per event (the per-event contract, steps 0-7, with the ring of ``rnncore.model.attention``): validate, surprise from
the stored forecast and normalisation (``_tile.preprocess_tile``) and the recurrent step of every layer
(``_tile.cell_update``), each on a one-event tile, push the top layer's new ``h`` into the stream's ring, attend over
the filled slots, then the head on ``[h; context]`` and the new forecast. Events are applied one by one, so a
stream repeated inside a batch is exact by construction; this kernel trades the tiled kernel's speed for
simplicity (the attention model is optional and off by default).

Attention uses ``q . (W_k r_j) = (W_k^T q) . r_j`` and ``sum_j w_j W_v r_j = W_v (sum_j w_j r_j)``: per event
``3 H^2 + 2 K H`` multiply-adds on top of the recurrent step, in float64 from the float32 ring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from rnncore.kernels import layout
from rnncore.kernels._numba import jit
from rnncore.kernels._tile import (
    PRE_FIELDS,
    SHAPE_MISMATCH,
    STATUS_INVALID,
    STATUS_OK,
    cell_update,
    matmul,
    preprocess_tile,
    shapes_agree,
    softplus,
)
from rnncore.kernels.errors import KernelInputError
from rnncore.kernels.layout import StepOutput
from rnncore.kernels.packing import (
    CELL_GRU,
    CELL_RNN,
    IDX_CELL,
    IDX_FEATURES,
    IDX_HEAD_B,
    IDX_HEAD_W,
    IDX_HIDDEN,
    IDX_INPUT,
    IDX_LAYER0,
    IDX_LAYERS,
    SC_EPS,
    SC_MIN_SCALE,
    PackedModel,
)
from rnncore.model.attention import FILL_COLUMN, NEXT_COLUMN, RING_COLUMN, ring_schema

ATTENTION_SIGNATURE = (
    "int64(float32[::1], int64[::1], float64[::1], float32[:, :, ::1], "  # packed model + attention [3, H, H]
    "float32[:, :, :, ::1], float32[:, :, ::1], float32[:, :, ::1], float64[::1], int64[::1], "  # state
    "float32[:, :, ::1], int32[::1], int32[::1], "  # ring [C, K, H], next [C], fill [C]
    "int64[::1], float64[::1], float32[:, ::1], "  # events
    "float32[::1], float32[:, ::1], float32[:, ::1], int8[::1])"  # outputs
)


def advance_attention(
    model: PackedModel,
    columns: Mapping[str, np.ndarray],
    rows: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    out: StepOutput,
) -> int:
    """Run :func:`attention_kernel` over the state columns, ring included; returns the kernel's code
    (``SHAPE_MISMATCH`` also for a missing or mistyped base column). A bad ring column raises at once."""
    for name, (shape, dtype) in ring_schema(model.config).items():
        array = columns.get(name)
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape[1:] != shape:
            got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else "nothing"
            raise KernelInputError(
                f"attention state column {name!r} must be {dtype} [rows, {', '.join(map(str, shape))}] "
                f"(allocate columns from state_schema()), got {got}"
            )
        if not array.flags.c_contiguous:
            raise KernelInputError(f"attention state column {name!r} must be C-contiguous")
    try:
        return int(
            attention_kernel(
                model.weights, model.index, model.scalars, model.attention,
                columns[layout.RECURRENT], columns[layout.NORM], columns[layout.FORECAST],
                columns[layout.LAST_TIME], columns[layout.COUNT],
                columns[RING_COLUMN], columns[NEXT_COLUMN], columns[FILL_COLUMN],
                rows, times, values, out.nll, out.mean, out.scale, out.status,
            )
        )  # fmt: skip
    except (KeyError, TypeError):
        return SHAPE_MISMATCH


@jit
def _attention_shapes_agree(
    index: np.ndarray,
    attention: np.ndarray,
    recurrent: np.ndarray,
    norm: np.ndarray,
    forecast: np.ndarray,
    last_time: np.ndarray,
    count: np.ndarray,
    ring: np.ndarray,
    ring_next: np.ndarray,
    ring_fill: np.ndarray,
    rows: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    nll: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    status: np.ndarray,
) -> bool:
    """True when every array has the shape the packed model, its attention block and the batch size imply."""
    H = index[IDX_HIDDEN]
    C = recurrent.shape[0]
    ok = shapes_agree(index, recurrent, norm, forecast, last_time, count, rows, times, values, nll, mean, scale, status)
    ok = ok and attention.shape[0] == 3 and attention.shape[1] == H and attention.shape[2] == H
    ok = ok and ring.shape[0] == C and ring.shape[1] >= 1 and ring.shape[2] == H
    return ok and ring_next.shape[0] == C and ring_fill.shape[0] == C


@jit
def _attend(
    r: int,
    h: np.ndarray,
    attention: np.ndarray,
    ring: np.ndarray,
    ring_next: np.ndarray,
    ring_fill: np.ndarray,
    q: np.ndarray,
    u: np.ndarray,
    logits: np.ndarray,
    mix: np.ndarray,
    context: np.ndarray,
) -> None:
    """Push ``h`` [H] into row r's ring, then context = W_v sum_j softmax_j((W_k^T W_q h) . ring_j / sqrt(H)) ring_j."""
    K = ring.shape[1]
    H = ring.shape[2]
    slot = ring_next[r]
    if slot < 0 or slot >= K:  # only a corrupt row: start its ring over rather than write out of bounds
        slot = 0
        ring_fill[r] = 0
    stored = ring[r, slot]
    for j in range(H):
        stored[j] = h[j]
    ring_next[r] = (slot + 1) % K
    fill = min(max(ring_fill[r], 0) + 1, K)
    ring_fill[r] = fill
    Wq = attention[0]
    Wk = attention[1]
    Wv = attention[2]
    for a in range(H):  # q = W_q h
        acc = 0.0
        for b in range(H):
            acc += np.float64(Wq[a, b]) * np.float64(stored[b])
        q[a] = acc
    for b in range(H):  # u = W_k^T q
        u[b] = 0.0
    for a in range(H):
        qa = q[a]
        for b in range(H):
            u[b] += qa * np.float64(Wk[a, b])
    inv_sqrt_h = 1.0 / math.sqrt(H)
    top = -np.inf
    for j in range(fill):  # a_j = q . W_k ring_j / sqrt(H), filled slots only
        slot_j = ring[r, j]
        acc = 0.0
        for b in range(H):
            acc += u[b] * np.float64(slot_j[b])
        logits[j] = acc * inv_sqrt_h
        top = max(top, logits[j])
    total = 0.0
    for j in range(fill):
        logits[j] = math.exp(logits[j] - top)
        total += logits[j]
    for b in range(H):
        mix[b] = 0.0
    for j in range(fill):  # mix = sum_j w_j ring_j
        w = logits[j] / total
        slot_j = ring[r, j]
        for b in range(H):
            mix[b] += w * np.float64(slot_j[b])
    for a in range(H):  # context = W_v mix
        acc = 0.0
        for b in range(H):
            acc += np.float64(Wv[a, b]) * mix[b]
        context[a] = acc


@jit(ATTENTION_SIGNATURE)
def attention_kernel(
    weights: np.ndarray,
    index: np.ndarray,
    scalars: np.ndarray,
    attention: np.ndarray,
    recurrent: np.ndarray,
    norm: np.ndarray,
    forecast: np.ndarray,
    last_time: np.ndarray,
    count: np.ndarray,
    ring: np.ndarray,
    ring_next: np.ndarray,
    ring_fill: np.ndarray,
    rows: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    nll: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    status: np.ndarray,
) -> int:
    """Advance every event in arrival order. Returns 0; SHAPE_MISMATCH if array shapes disagree, or 1 + the
    position of the first row outside the table (in both cases nothing was touched)."""
    if not _attention_shapes_agree(
        index, attention, recurrent, norm, forecast, last_time, count, ring, ring_next, ring_fill,
        rows, times, values, nll, mean, scale, status,
    ):  # fmt: skip
        return SHAPE_MISMATCH
    B = rows.shape[0]
    capacity = recurrent.shape[0]
    for i in range(B):
        if rows[i] < 0 or rows[i] >= capacity:
            return i + 1
    cell = index[IDX_CELL]
    L = index[IDX_LAYERS]
    F = index[IDX_FEATURES]
    I = index[IDX_INPUT]
    H = index[IDX_HIDDEN]
    G = 1 if cell == CELL_RNN else (3 if cell == CELL_GRU else 4)
    GH = G * H
    eps = scalars[SC_EPS]
    min_scale = scalars[SC_MIN_SCALE]
    K = ring.shape[1]
    X0 = np.empty((1, I), np.float32)
    H_old = np.empty((1, H), np.float32)
    H_new = np.empty((1, H), np.float32)
    Gi = np.empty((1, GH), np.float32)
    Gh = np.empty((1, GH), np.float32)
    slot_rows = np.empty(1, np.int64)
    slot_event = np.empty(1, np.int64)
    pre = np.empty((PRE_FIELDS, 1), np.float64)
    pre32 = np.empty((1, 1), np.float32)
    work = np.empty(4 * H + K, np.float64)
    q = work[:H]
    u = work[H : 2 * H]
    mix = work[2 * H : 3 * H]
    context = work[3 * H : 4 * H]
    logits = work[4 * H :]
    # rows 0..H-1: h, H..2H-1: context
    head_wT = weights[index[IDX_HEAD_W] : index[IDX_HEAD_W] + 2 * H * 2 * F].reshape((2 * H, 2 * F))
    head_b = weights[index[IDX_HEAD_B] : index[IDX_HEAD_B] + 2 * F]
    for i in range(B):
        valid = math.isfinite(times[i])
        for f in range(F):
            valid = valid and math.isfinite(values[i, f])
        if not valid:
            status[i] = STATUS_INVALID
            nll[i] = np.nan
            for f in range(F):
                mean[i, f] = np.nan
                scale[i, f] = np.nan
            continue
        status[i] = STATUS_OK
        r = rows[i]
        slot_rows[0] = r
        slot_event[0] = i
        preprocess_tile(
            1,
            slot_event,
            slot_rows,
            index,
            scalars,
            norm,
            forecast,
            last_time,
            count,
            times,
            values,
            nll,
            X0,
            pre,
            pre32,
        )
        for layer in range(L):  # recurrent stack (step 5) on a one-event tile
            base = IDX_LAYER0 + 4 * layer
            width = I if layer == 0 else H
            W_ihT = weights[index[base] : index[base] + width * GH].reshape((width, GH))
            W_hhT = weights[index[base + 1] : index[base + 1] + H * GH].reshape((H, GH))
            b_ih = weights[index[base + 2] : index[base + 2] + GH]
            b_hh = weights[index[base + 3] : index[base + 3] + GH]
            if layer == 0:
                matmul(X0, 1, W_ihT, Gi)
            else:
                matmul(H_new, 1, W_ihT, Gi)
            H_old[0] = recurrent[r, layer, 0]
            matmul(H_old, 1, W_hhT, Gh)
            cell_update(cell, layer, 1, H, slot_rows, Gi, Gh, b_ih, b_hh, H_old, H_new, recurrent)
        _attend(r, H_new[0], attention, ring, ring_next, ring_fill, q, u, logits, mix, context)
        h = H_new[0]  # the top layer's new h, exactly as stored in the ring
        for f in range(F):  # head on [h; context] and forecast (step 6)
            mu = np.float64(head_b[f])
            raw = np.float64(head_b[F + f])
            for j in range(H):
                mu += np.float64(head_wT[j, f]) * np.float64(h[j]) + np.float64(head_wT[H + j, f]) * context[j]
                raw += np.float64(head_wT[j, F + f]) * np.float64(h[j]) + np.float64(head_wT[H + j, F + f]) * context[j]
            sigma = softplus(raw) + min_scale
            forecast[r, 0, f] = mu
            forecast[r, 1, f] = sigma
            sd = math.sqrt(np.float64(norm[r, 1, f]) + eps)
            mean[i, f] = norm[r, 0, f] + np.float64(forecast[r, 0, f]) * sd
            scale[i, f] = np.float32(sigma) * sd
    return 0
