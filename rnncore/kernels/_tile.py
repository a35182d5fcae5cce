"""The tiled batched step kernel: gather a tile of distinct streams, one matrix product per layer, write back.

Per tile (up to ``TILE`` events, each stream at most once): preprocess the tile's events (contract steps
0-4) into ``X0`` as vector loops over gathered state columns (``preprocess_tile``); per layer gather the
old ``h`` into a contiguous block and compute every gate's pre-activation ``P = bias + X W_ih^T + H W_hh^T``
with the register-blocked products of ``_gemm`` (the weights are read once per tile, not once per event),
then apply the cell equations (torch.nn.RNN/GRU/LSTM) row by row,
writing the new state straight back; finally the head (step 6) and the forecast outputs. A stream repeated
inside the batch closes the tile (``tile_mark``), so each stream's events are applied in arrival order.
``matmul`` and ``cell_update`` serve the one-event attention kernel (``_attention``).
"""

from __future__ import annotations

import math

import numpy as np

from rnncore.kernels._gemm import LANES, ROWS, gate_product
from rnncore.kernels._numba import jit, jit_leaf
from rnncore.kernels._prefetch import prefetch
from rnncore.kernels.fastmath import sigmoid_approx, softplus_approx, tanh_approx
from rnncore.kernels.packing import (
    CELL_GRU,
    CELL_LSTM,
    CELL_RNN,
    IDX_CELL,
    IDX_FEATURES,
    IDX_HIDDEN,
    IDX_INPUT,
    IDX_LAYER0,
    IDX_LAYERS,
    IDX_TIME_FEATURE,
    SC_CLIP,
    SC_DT_SCALE,
    SC_EPS,
    SC_MIN_SCALE,
    SC_NORM_WINDOW,
)

# Events per tile. The fused weights of one layer (H x 4Hp floats: 64 KiB at H=64) are re-read once per
# tile; at GRU H=64, N=1M 30-, 64-, 66- and 96-event tiles measured alike (239-249 ns per event), 132 and
# 258 events 5-10% slower. Weights above 512 KiB get 256-event tiles (measured with BLAS at H=256: 4.8 vs
# 5.4 us per event against 64).
TILE = 256
SMALL_TILE = 64
SMALL_TILE_WEIGHT_BYTES = 512 * 1024
SMALL_K = 8  # matmul (attention kernel): inner size below which a hand loop beats a BLAS call
SMALL_OUTPUT = 64  # matmul: outputs (events x columns) below which a hand loop beats a BLAS call
PREFETCH_AHEAD = 16  # events: the gather loop prefetches the rows of event i + PREFETCH_AHEAD (8-64 measure alike)
LINE_FLOATS = 16  # float32 per 64-byte cache line
PREFETCH_LINES = 32  # at most this many lines of a recurrent row (longer rows: the hardware prefetcher follows)
STATUS_OK, STATUS_INVALID = 0, 1
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@jit
def matmul(A: np.ndarray, n: int, WT: np.ndarray, out: np.ndarray) -> None:
    """out[:n] = A[:n] @ WT: BLAS (scipy's, one thread) unless the product is thin, then a vectorised loop.

    Measured: even one event x 64 x 192 is faster in BLAS (0.6 us vs 0.9 us); a 1 x 64 x 2 head is not."""
    K = WT.shape[0]
    if K >= SMALL_K and n * WT.shape[1] >= SMALL_OUTPUT:
        np.dot(A[:n], WT, out[:n])
        return
    N = WT.shape[1]
    for e in range(n):
        row = out[e]
        for j in range(N):
            row[j] = 0.0
        for k in range(K):
            a = A[e, k]
            wk = WT[k]
            for j in range(N):
                row[j] += a * wk[j]


@jit_leaf
def _prefetch_row(
    r: int,
    recurrent: np.ndarray,
    norm: np.ndarray,
    forecast: np.ndarray,
    last_time: np.ndarray,
    count: np.ndarray,
    tile_mark: np.ndarray,
) -> None:
    """Start loading every cache line of row r in all columns (random rows of a large table miss to DRAM)."""
    prefetch(tile_mark, r)
    prefetch(count, r)
    prefetch(last_time, r)
    stats = norm.shape[1] * norm.shape[2]
    prefetch(norm, r * stats)
    prefetch(norm, r * stats + stats - 1)
    prefetch(forecast, r * stats)
    prefetch(forecast, r * stats + stats - 1)
    width = recurrent.shape[1] * recurrent.shape[2] * recurrent.shape[3]
    for offset in range(0, min(width, PREFETCH_LINES * LINE_FLOATS), LINE_FLOATS):
        prefetch(recurrent, r * width + offset)
    prefetch(recurrent, r * width + width - 1)


@jit
def softplus(x: float) -> float:
    """log(1 + e^x), stable for large |x| (called with float32: expf/log1pf)."""
    return x + math.log1p(math.exp(-x)) if x > 0.0 else math.log1p(math.exp(x))


PRE_FIELDS = 9  # rows of the per-tile preprocessing scratch (see preprocess_tile)


@jit_leaf
def preprocess_tile(
    n: int,
    slot_event: np.ndarray,
    slot_rows: np.ndarray,
    index: np.ndarray,
    scalars: np.ndarray,
    norm: np.ndarray,
    forecast: np.ndarray,
    last_time: np.ndarray,
    count: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    nll: np.ndarray,
    X0: np.ndarray,
    pre: np.ndarray,
    pre32: np.ndarray,
) -> None:
    """Contract steps 1-4 and 7 for the n events of a tile (event ``slot_event[e]`` of row ``slot_rows[e]``):
    surprise ``nll``, stats update, input rows ``X0[e]``. The state columns are gathered into the contiguous
    scratch ``pre`` [PRE_FIELDS, T] (float64) and ``pre32`` [1, T] (float32), the arithmetic runs as vector
    loops over the tile, the new statistics are scattered back."""
    F = index[IDX_FEATURES]
    time_feature = index[IDX_TIME_FEATURE]
    inv_window = 1.0 / scalars[SC_NORM_WINDOW]
    eps = scalars[SC_EPS]
    clip = scalars[SC_CLIP]
    dt_scale = scalars[SC_DT_SCALE]
    # rows: 0 seen, 1 dt, 2 alpha, 3 squares, 4 sigma product, 5 value, 6 mean, 7 variance, 8 forecast mu
    for e in range(n):  # per-stream scalars (independent loads: their misses overlap)
        r = slot_rows[e]
        seen = count[r]
        t = times[slot_event[e]]
        pre[0, e] = seen
        pre[1, e] = max(t - last_time[r], 0.0) if seen > 0 else 0.0
        pre[2, e] = max(1.0 / (seen + 1), inv_window)
        pre[3, e] = 0.0
        pre[4, e] = 1.0
        last_time[r] = t
        count[r] = seen + 1
    for f in range(F):
        for e in range(n):  # gather
            r = slot_rows[e]
            pre[5, e] = values[slot_event[e], f]
            pre[6, e] = norm[r, 0, f]
            pre[7, e] = norm[r, 1, f]
            pre[8, e] = forecast[r, 0, f]
            pre32[0, e] = forecast[r, 1, f]
        for e in range(n):  # vector arithmetic: surprise terms, stats update, normalised input
            v = pre[5, e]
            m = pre[6, e]
            var = pre[7, e]
            sigma = np.float64(pre32[0, e])
            sd = math.sqrt(var + eps)
            z = ((v - m) / sd - pre[8, e]) / sigma
            pre[3, e] += z * z
            pre[4, e] *= sigma
            alpha = pre[2, e]
            delta = v - m
            m32 = np.float32(m + alpha * delta)
            var32 = np.float32((1.0 - alpha) * (var + alpha * delta * delta))
            pre[6, e] = m32
            pre[7, e] = var32
            x = (v - np.float64(m32)) / math.sqrt(np.float64(var32) + eps)
            X0[e, f] = min(max(x, -clip), clip)
        for e in range(n):  # scatter the new statistics
            r = slot_rows[e]
            norm[r, 0, f] = pre[6, e]
            norm[r, 1, f] = pre[7, e]
    for e in range(n):  # surprise (nll) from the squares and the product of the scales
        i = slot_event[e]
        if pre[0, e] > 0:
            sigma_product = pre[4, e]
            if 1e-300 < sigma_product < 1e300:
                log_sigma = math.log(sigma_product)
            else:  # many extreme scales: the product left float64's range
                r = slot_rows[e]
                log_sigma = 0.0
                for f in range(F):
                    log_sigma += math.log(np.float64(forecast[r, 1, f]))
            nll[i] = (0.5 * pre[3, e] + log_sigma) / F + _HALF_LOG_2PI
        else:
            nll[i] = np.nan
    if time_feature:
        for e in range(n):
            X0[e, F] = math.log1p(pre[1, e] / dt_scale)


@jit_leaf
def cell_update(
    cell: int,
    layer: int,
    n: int,
    H: int,
    slot_rows: np.ndarray,
    Gi: np.ndarray,
    Gh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    H_old: np.ndarray,
    H_new: np.ndarray,
    recurrent: np.ndarray,
) -> None:
    """Cell equations on the gate pre-activations of n events; new h into H_new and straight back to the table."""
    for e in range(n):
        r = slot_rows[e]
        gi = Gi[e]
        gh = Gh[e]
        h_old = H_old[e]
        h_new = H_new[e]
        h_out = recurrent[r, layer, 0]
        if cell == CELL_GRU:
            # r = s(W_ir x + b_ir + W_hr h + b_hr); z likewise; n = tanh(W_in x + b_in + r (W_hn h + b_hn))
            for j in range(H):
                rg = sigmoid_approx(gi[j] + b_ih[j] + gh[j] + b_hh[j])
                zg = sigmoid_approx(gi[H + j] + b_ih[H + j] + gh[H + j] + b_hh[H + j])
                ng = tanh_approx(gi[2 * H + j] + b_ih[2 * H + j] + rg * (gh[2 * H + j] + b_hh[2 * H + j]))
                h = ng + zg * (h_old[j] - ng)  # (1 - z) n + z h
                h_new[j] = h
                h_out[j] = h
        elif cell == CELL_LSTM:
            # i, f, g, o gates; c' = f c + i g; h' = o tanh(c')
            c_io = recurrent[r, layer, 1]
            for j in range(H):
                ig = sigmoid_approx(gi[j] + b_ih[j] + gh[j] + b_hh[j])
                fg = sigmoid_approx(gi[H + j] + b_ih[H + j] + gh[H + j] + b_hh[H + j])
                gg = tanh_approx(gi[2 * H + j] + b_ih[2 * H + j] + gh[2 * H + j] + b_hh[2 * H + j])
                og = sigmoid_approx(gi[3 * H + j] + b_ih[3 * H + j] + gh[3 * H + j] + b_hh[3 * H + j])
                c = fg * c_io[j] + ig * gg
                h = og * tanh_approx(c)
                c_io[j] = c
                h_new[j] = h
                h_out[j] = h
        else:
            # h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
            for j in range(H):
                h = tanh_approx(gi[j] + b_ih[j] + gh[j] + b_hh[j])
                h_new[j] = h
                h_out[j] = h


@jit_leaf
def _gates(
    cell: int,
    layer: int,
    n: int,
    H: int,
    slot_rows: np.ndarray,
    P: np.ndarray,
    H_old: np.ndarray,
    H_new: np.ndarray,
    recurrent: np.ndarray,
) -> None:
    """Cell equations on the fused pre-activations ``P`` [T, gate, Hp] (biases included, see
    ``packing.gate_blocks``) of n events; new h into H_new and straight back to the table.

    Every index is a loop variable or a constant: Numba wraps negative indices, and a computed column such
    as ``Hp + j`` turned the vector loads into gathers (88 ns per GRU event instead of 32); rows are
    indexed without row views, each of which would cost reference counting per event."""
    for e in range(n):
        r = slot_rows[e]
        if cell == CELL_GRU:
            # r = s(W_ir x + b_ir + W_hr h + b_hr); z likewise; n = tanh(W_in x + b_in + r (W_hn h + b_hn))
            for j in range(H):
                rg = sigmoid_approx(P[e, 0, j])
                zg = sigmoid_approx(P[e, 1, j])
                ng = tanh_approx(P[e, 3, j] + rg * P[e, 2, j])
                h = ng + zg * (H_old[e, j] - ng)  # (1 - z) n + z h
                H_new[e, j] = h
                recurrent[r, layer, 0, j] = h
        elif cell == CELL_LSTM:
            # i, f, g, o gates; c' = f c + i g; h' = o tanh(c')
            for j in range(H):
                ig = sigmoid_approx(P[e, 0, j])
                fg = sigmoid_approx(P[e, 1, j])
                gg = tanh_approx(P[e, 2, j])
                og = sigmoid_approx(P[e, 3, j])
                c = fg * recurrent[r, layer, 1, j] + ig * gg
                h = og * tanh_approx(c)
                recurrent[r, layer, 1, j] = c
                H_new[e, j] = h
                recurrent[r, layer, 0, j] = h
        else:
            # h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
            for j in range(H):
                h = tanh_approx(P[e, 0, j])
                H_new[e, j] = h
                recurrent[r, layer, 0, j] = h


KERNEL_SIGNATURE = (
    "int64(float32[::1], int64[::1], float64[::1], "  # packed model
    "float32[:, :, :, ::1], float32[:, :, ::1], float32[:, :, ::1], float64[::1], int64[::1], uint8[::1], "  # state
    "int64[::1], float64[::1], float32[:, ::1], "  # events
    "float32[::1], float32[:, ::1], float32[:, ::1], int8[::1])"  # outputs
)
SHAPE_MISMATCH = -1


@jit_leaf
def shapes_agree(
    index: np.ndarray,
    recurrent: np.ndarray,
    norm: np.ndarray,
    forecast: np.ndarray,
    last_time: np.ndarray,
    count: np.ndarray,
    rows: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    nll: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    status: np.ndarray,
) -> bool:
    """True when the state, event and output arrays have the shapes the packed model and the batch size imply
    (cheap, in-kernel; shared by the attention kernel, which checks its ring on top)."""
    B = rows.shape[0]
    F = index[IDX_FEATURES]
    P = 2 if index[IDX_CELL] == CELL_LSTM else 1
    C = recurrent.shape[0]
    events_ok = times.shape[0] == B and values.shape[0] == B and values.shape[1] == F
    outputs_ok = nll.shape[0] == B and status.shape[0] == B
    outputs_ok = (
        outputs_ok and mean.shape[0] == B and mean.shape[1] == F and scale.shape[0] == B and scale.shape[1] == F
    )
    layers, hidden = index[IDX_LAYERS], index[IDX_HIDDEN]
    state_ok = recurrent.shape[1] == layers and recurrent.shape[2] == P and recurrent.shape[3] == hidden
    for stats in (norm, forecast):
        state_ok = state_ok and stats.shape[0] == C and stats.shape[1] == 2 and stats.shape[2] == F
    state_ok = state_ok and last_time.shape[0] == C and count.shape[0] == C
    return events_ok and outputs_ok and state_ok


@jit(KERNEL_SIGNATURE)
def advance_kernel(
    weights: np.ndarray,
    index: np.ndarray,
    scalars: np.ndarray,
    recurrent: np.ndarray,
    norm: np.ndarray,
    forecast: np.ndarray,
    last_time: np.ndarray,
    count: np.ndarray,
    tile_mark: np.ndarray,
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
    if tile_mark.shape[0] != recurrent.shape[0] or not shapes_agree(
        index, recurrent, norm, forecast, last_time, count, rows, times, values, nll, mean, scale, status
    ):
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
    eps = scalars[SC_EPS]
    min_scale = scalars[SC_MIN_SCALE]
    Hp = (H + LANES - 1) // LANES * LANES
    D = Hp if cell == CELL_RNN else 4 * Hp
    # one scratch allocation per call, carved into the tile buffers (rows rounded up for gate_product)
    tile = SMALL_TILE if H * D * 4 <= SMALL_TILE_WEIGHT_BYTES else TILE
    T = min(B, tile)
    T_rows = (T + ROWS - 1) // ROWS * ROWS
    slots = np.empty(2 * T, np.int64)
    slot_event = slots[:T]
    slot_rows = slots[T:]
    Dh = (2 * F + LANES - 1) // LANES * LANES  # head outputs [mu (F) | scale pre-activation (F) | padding]
    sizes = (T_rows * I, T_rows * H, T_rows * H, T_rows * D, T_rows * Dh)
    scratch = np.zeros(sum(sizes) + LANES, np.float32)
    start = (-(scratch.ctypes.data // 4)) % LANES  # 64-byte aligned rows (every width below but I is padded)
    X0 = scratch[start : start + sizes[0]].reshape((T_rows, I))
    start += sizes[0]
    H_old = scratch[start : start + sizes[1]].reshape((T_rows, H))
    start += sizes[1]
    H_new = scratch[start : start + sizes[2]].reshape((T_rows, H))
    start += sizes[2]
    P = scratch[start : start + sizes[3]].reshape((T_rows, D))
    P_gates = scratch[start : start + sizes[3]].reshape((T_rows, D // Hp, Hp))
    start += sizes[3]
    O = scratch[start : start + sizes[4]].reshape((T_rows, Dh))
    pre = np.empty((PRE_FIELDS, T), np.float64)
    pre32 = np.empty((1, T), np.float32)
    head = IDX_LAYER0 + 7 * L
    min_scale32 = np.float32(min_scale)
    for i in range(min(B, PREFETCH_AHEAD)):
        _prefetch_row(rows[i], recurrent, norm, forecast, last_time, count, tile_mark)
    i = 0
    while i < B:
        # ---- gather a tile of distinct, valid events (contract steps 0-4, 7)
        n = 0
        while i < B and n < T:
            if i + PREFETCH_AHEAD < B:
                _prefetch_row(rows[i + PREFETCH_AHEAD], recurrent, norm, forecast, last_time, count, tile_mark)
            r = rows[i]
            if tile_mark[r]:
                break  # the stream is already in this tile: close it to keep arrival order
            valid = math.isfinite(times[i])
            for f in range(F):
                valid = valid and math.isfinite(values[i, f])
            if not valid:
                status[i] = STATUS_INVALID
                nll[i] = np.nan
                for f in range(F):
                    mean[i, f] = np.nan
                    scale[i, f] = np.nan
                i += 1
                continue
            status[i] = STATUS_OK
            tile_mark[r] = 1
            slot_event[n] = i
            slot_rows[n] = r
            n += 1
            i += 1
        if n == 0:
            continue
        preprocess_tile(
            n,
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
        # ---- recurrent stack (step 5): P = bias + x W_ih^T + h W_hh^T in one product, then the gates
        for layer in range(L):
            fused = IDX_LAYER0 + 4 * L + 3 * layer
            for e in range(n):
                r = slot_rows[e]
                for j in range(H):
                    H_old[e, j] = recurrent[r, layer, 0, j]
            X = X0 if layer == 0 else H_new
            K1 = I if layer == 0 else H
            w1, w2, bias = index[fused], index[fused + 1], index[fused + 2]
            if cell == CELL_GRU:  # [r z] from x and h, n_h from h only, n_x from x only
                gate_product(n, P, 0, 2 * Hp, weights, bias, X, w1, K1, H_old, w2, H, D)
                gate_product(n, P, 2 * Hp, Hp, weights, bias, X, w1, 0, H_old, w2, H, D)
                gate_product(n, P, 3 * Hp, Hp, weights, bias, X, w1, K1, H_old, w2, 0, D)
            else:
                gate_product(n, P, 0, D, weights, bias, X, w1, K1, H_old, w2, H, D)
            _gates(cell, layer, n, H, slot_rows, P_gates, H_old, H_new, recurrent)
        # ---- head and forecast (step 6), release the tile marks
        gate_product(n, O, 0, Dh, weights, index[head + 1], H_new, index[head], H, H_new, 0, 0, Dh)
        for e in range(n):
            for j in range(Dh):  # whole vectors, mu lanes and padding kept by a select: vectorises for F=1 too
                o = O[e, j]
                O[e, j] = softplus_approx(o) + min_scale32 if j >= F else o
        for e in range(n):
            r = slot_rows[e]
            i_event = slot_event[e]
            for f in range(F):
                mu = O[e, f]
                sigma = O[e, F + f]
                forecast[r, 0, f] = mu
                forecast[r, 1, f] = sigma
                sd = math.sqrt(np.float64(norm[r, 1, f]) + eps)
                mean[i_event, f] = norm[r, 0, f] + mu * sd
                scale[i_event, f] = sigma * sd
            tile_mark[r] = 0
    return 0
