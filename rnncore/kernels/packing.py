"""Weights packed for the step kernels: one float32 array plus an int64 index, cheap to rebuild on hot reload.

Per layer ``k`` the packed array holds ``W_ih^T [I_k, G*H]``, ``W_hh^T [H, G*H]``, ``b_ih [G*H]``,
``b_hh [G*H]`` (PyTorch gate order), then the head ``W^T [H, 2F]`` and ``b [2F]``. Transposed so that a
tile of inputs ``X [T, I_k]`` times ``W^T`` is one row-major matrix product; every block starts on a
64-byte boundary. ``index`` carries the sizes and block offsets, ``scalars`` the preprocessing constants,
so a kernel call needs three model arguments whatever the depth.

After those, per layer, the tiled kernel's fused gate blocks (``gate_blocks``): ``W1 [I_k, D]``, ``W2 [H, D]``,
``bias [D]`` with each gate padded to ``Hp`` = H rounded up to 16 columns, so one register-blocked product
gives every gate's pre-activation with both biases (``rnncore.kernels._gemm``); their offsets follow the
4 L per-layer entries of ``index``; then the head padded to whole vectors (``head_blocks``) and its two
offsets. The array starts on a 64-byte boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights

CELL_RNN, CELL_GRU, CELL_LSTM = 0, 1, 2  # index[IDX_CELL]: the one definition the kernels branch on
CELL_CODES: dict[str, int] = {"rnn": CELL_RNN, "gru": CELL_GRU, "lstm": CELL_LSTM}

# index layout: fixed header, 4 offsets per layer (W_ih^T, W_hh^T, b_ih, b_hh), 3 per layer (W1, W2, bias),
# then the fused head (W, bias)
IDX_CELL, IDX_LAYERS, IDX_FEATURES, IDX_INPUT, IDX_HIDDEN, IDX_TIME_FEATURE, IDX_HEAD_W, IDX_HEAD_B = range(8)
IDX_LAYER0 = 8
# scalars layout
SC_NORM_WINDOW, SC_EPS, SC_CLIP, SC_DT_SCALE, SC_MIN_SCALE = range(5)

_ALIGN = 16  # floats: 64 bytes


@dataclass(frozen=True)
class PackedModel:
    """A model ready for ``advance``: packed float32 weights, int64 sizes/offsets and float64 constants."""

    config: ModelConfig
    weights: np.ndarray  # float32 [n]
    index: np.ndarray  # int64 [8 + 4 L + 3 L + 2]
    scalars: np.ndarray  # float64 [5]
    # attention head (rnncore.kernels._attention): W_q, W_k, W_v as float32 [3, H, H]; [0, 1, 1] without one
    attention: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1), dtype=np.float32))

    @property
    def nbytes(self) -> int:
        """Bytes held by the packed arrays."""
        return int(self.weights.nbytes + self.index.nbytes + self.scalars.nbytes + self.attention.nbytes)


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def padded_width(n: int) -> int:
    """n rounded up to whole 16-float vectors (Hp: the width of one gate in the fused blocks; Fp for the head)."""
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def gate_columns(cell: str, hidden: int) -> int:
    """D: columns of the fused pre-activation row (GRU [r, z, n_h, n_x], LSTM [i, f, g, o], RNN [h])."""
    return (1 if cell == "rnn" else 4) * padded_width(hidden)


def gate_blocks(config: ModelConfig, params: Mapping[str, np.ndarray], k: int) -> tuple[np.ndarray, ...]:
    """Layer k's fused blocks ``W1 = W_ih^T``, ``W2 = W_hh^T`` [*, D] and ``bias`` [D] in the gate order of
    ``gate_columns``: ``bias + x W1 + h W2`` is every gate's pre-activation (the GRU's n gate keeps its input
    part n_x = W_in x + b_in and hidden part n_h = W_hn h + b_hn apart, as r multiplies only n_h)."""
    H, Hp = config.hidden_size, padded_width(config.hidden_size)
    W_ih, W_hh = params[f"rnn.weight_ih_l{k}"], params[f"rnn.weight_hh_l{k}"]
    b_ih, b_hh = params[f"rnn.bias_ih_l{k}"], params[f"rnn.bias_hh_l{k}"]
    D = gate_columns(config.cell, H)
    W1 = np.zeros((W_ih.shape[1], D), np.float32)
    W2 = np.zeros((H, D), np.float32)
    bias = np.zeros(D, np.float32)
    gates = 1 if config.cell == "rnn" else (3 if config.cell == "gru" else 4)
    for g in range(gates):
        rows = slice(g * H, (g + 1) * H)
        if config.cell == "gru" and g == 2:  # n: hidden part in block 2, input part in block 3
            W2[:, 2 * Hp : 2 * Hp + H] = W_hh[rows].T
            bias[2 * Hp : 2 * Hp + H] = b_hh[rows]
            W1[:, 3 * Hp : 3 * Hp + H] = W_ih[rows].T
            bias[3 * Hp : 3 * Hp + H] = b_ih[rows]
            continue
        cols = slice(g * Hp, g * Hp + H)
        W1[:, cols] = W_ih[rows].T
        W2[:, cols] = W_hh[rows].T
        bias[cols] = np.asarray(b_ih[rows], np.float32) + np.asarray(b_hh[rows], np.float32)
    return W1, W2, bias


def head_blocks(config: ModelConfig, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The head as ``W [head input, D]`` and ``bias [D]``, D = 2F rounded up to 16: PyTorch's row order (mu's
    F outputs, then the scale's F pre-activations) in whole vectors, one vector up to F = 8."""
    head_w, head_b = params["head.weight"], params["head.bias"]
    D = padded_width(head_w.shape[0])
    W = np.zeros((head_w.shape[1], D), np.float32)
    bias = np.zeros(D, np.float32)
    W[:, : head_w.shape[0]], bias[: head_b.shape[0]] = head_w.T, head_b
    return W, bias


def _aligned_zeros(n: int) -> np.ndarray:
    """Zeroed float32 [n] whose first element sits on a 64-byte boundary (aligned vector loads)."""
    raw = np.zeros(n + _ALIGN, dtype=np.float32)
    skip = (-raw.ctypes.data // 4) % _ALIGN
    return raw[skip : skip + n]


def pack(weights: ModelWeights) -> PackedModel:
    """Pack validated ModelWeights for the kernels (a few transposed copies: microseconds to milliseconds)."""
    config, params = weights.config, weights.params
    blocks: list[tuple[int, np.ndarray]] = []
    offsets: list[int] = []
    cursor = 0

    def put(array: np.ndarray) -> int:
        nonlocal cursor
        start = cursor
        flat = np.ascontiguousarray(array, dtype=np.float32).ravel()
        blocks.append((start, flat))
        cursor = _aligned(cursor + flat.size)
        return start

    head_w = put(params["head.weight"].T)
    head_b = put(params["head.bias"])
    for k in range(config.num_layers):
        offsets.append(put(params[f"rnn.weight_ih_l{k}"].T))
        offsets.append(put(params[f"rnn.weight_hh_l{k}"].T))
        offsets.append(put(params[f"rnn.bias_ih_l{k}"]))
        offsets.append(put(params[f"rnn.bias_hh_l{k}"]))
    for k in range(config.num_layers):
        offsets.extend(put(block) for block in gate_blocks(config, params, k))
    offsets.extend(put(block) for block in head_blocks(config, params))
    packed = _aligned_zeros(max(cursor, 1))
    for start, flat in blocks:
        packed[start : start + flat.size] = flat
    header = [
        CELL_CODES[config.cell],
        config.num_layers,
        config.n_features,
        config.input_size,
        config.hidden_size,
        int(config.time_delta_feature),
        head_w,
        head_b,
    ]
    index = np.array(header + offsets, dtype=np.int64)
    scalars = np.array(
        [float(config.norm_window), config.norm_eps, config.input_clip, config.dt_scale, config.min_scale],
        dtype=np.float64,
    )
    attention = np.zeros((0, 1, 1), dtype=np.float32)
    if config.attention_window:  # [3, H, H]: query, key, value (rnncore.kernels._attention)
        attention = np.stack([params[f"attention.{part}.weight"] for part in ("query", "key", "value")])
    return PackedModel(
        config=config, weights=packed, index=index, scalars=scalars, attention=np.ascontiguousarray(attention)
    )
