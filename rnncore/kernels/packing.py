"""Weights packed for the step kernels: one float32 array plus an int64 index, cheap to rebuild on hot reload.

Per layer ``k`` the packed array holds ``W_ih^T [I_k, G*H]``, ``W_hh^T [H, G*H]``, ``b_ih [G*H]``,
``b_hh [G*H]`` (PyTorch gate order), then the head ``W^T [H, 2F]`` and ``b [2F]``. Transposed so that a
tile of inputs ``X [T, I_k]`` times ``W^T`` is one row-major matrix product; every block starts on a
64-byte boundary. ``index`` carries the sizes and block offsets, ``scalars`` the preprocessing constants,
so a kernel call needs three model arguments whatever the depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncore.config import ModelConfig
from rnncore.model import ModelWeights

CELL_CODES: dict[str, int] = {"rnn": 0, "gru": 1, "lstm": 2}

# index layout: fixed header, then 4 offsets per layer (W_ih^T, W_hh^T, b_ih, b_hh)
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
    index: np.ndarray  # int64 [8 + 4 L]
    scalars: np.ndarray  # float64 [5]

    @property
    def nbytes(self) -> int:
        """Bytes held by the packed arrays."""
        return int(self.weights.nbytes + self.index.nbytes + self.scalars.nbytes)


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


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
    packed = np.zeros(max(cursor, 1), dtype=np.float32)
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
    return PackedModel(config=config, weights=packed, index=index, scalars=scalars)
