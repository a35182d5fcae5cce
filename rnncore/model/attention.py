"""Attention head over a per-stream ring of the last K top-layer hidden states: layout and numpy reference. No torch.

With ``ModelConfig.attention_window = K > 0`` each event, after the recurrent step gives the top layer's new
``h`` ([H]), does:

1. push: ``ring[next] = h``; ``next = (next + 1) % K``; ``fill = min(fill + 1, K)`` (so the current ``h`` is
   always attended to, and slots ``0..fill-1`` are the filled ones);
2. ``q = Wq h``; for each filled slot j: ``k_j = Wk ring[j]``, ``v_j = Wv ring[j]``,
   ``a_j = q . k_j / sqrt(H)``; ``w = softmax(a)`` over the filled slots only (empty slots get no weight);
3. ``context = sum_j w_j v_j``; the head reads the concatenation ``[h, context]`` ([2H]):
   ``o = head.weight @ [h; context] + head.bias`` and (mu, sigma) follow as in the plain model.

``Wq, Wk, Wv`` are ``attention.{query,key,value}.weight`` ([H, H], no bias). There is no positional encoding,
so the result does not depend on the slot order, only on which states are in the ring; the order is fixed
anyway (below) so snapshots and tests are exact.

Per-stream state (what the state table and snapshots must hold, zeros = a fresh stream):

* ``attn_ring``  float32 [K, H]: slot ``j`` holds a past top-layer h; the newest is at ``(next - 1) % K``,
  the oldest filled one at ``next`` when ``fill == K`` and at 0 otherwise;
* ``attn_next``  int32 scalar in [0, K): the slot the next state goes to;
* ``attn_fill``  int32 scalar in [0, K]: how many slots are filled (``min(events, K)``).

Bytes per stream: ``4 * K * H + 8`` (K=32, H=64: 8 200). The online kernel (``rnncore.kernels._attention``;
the columns come from ``rnncore.kernels.state_schema``) does not project the whole ring each event:
``q . Wk r_j = (Wk^T q) . r_j`` and ``sum_j w_j Wv r_j = Wv (sum_j w_j r_j)``, i.e. ``3 H^2 + 2 K H``
multiply-adds per event on top of the recurrent step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rnncore.errors import ModelError
from rnncore.model.config import ModelConfig

RING_COLUMN = "attn_ring"
NEXT_COLUMN = "attn_next"
FILL_COLUMN = "attn_fill"


def ring_schema(config: ModelConfig) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Per-stream columns of the attention ring as ``{name: (shape after the row axis, dtype)}``; empty when off."""
    K, H = config.attention_window, config.hidden_size
    if not K:
        return {}
    return {
        RING_COLUMN: ((K, H), np.dtype(np.float32)),
        NEXT_COLUMN: ((), np.dtype(np.int32)),
        FILL_COLUMN: ((), np.dtype(np.int32)),
    }


def ring_bytes_per_stream(config: ModelConfig) -> int:
    """Bytes the attention ring adds to each stream row (0 when the head has no attention)."""
    return sum(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for shape, dtype in ring_schema(config).values())


def allocate_rings(config: ModelConfig, capacity: int) -> dict[str, np.ndarray]:
    """Zeroed ring columns for ``capacity`` stream rows (fresh streams)."""
    if not config.attention_window:
        raise ModelError("this model has no attention head (attention_window = 0)")
    return {name: np.zeros((capacity, *shape), dtype=dtype) for name, (shape, dtype) in ring_schema(config).items()}


def ordered_ring(ring: np.ndarray, next_slot: int, fill: int) -> np.ndarray:
    """The filled slots of one stream's ring [K, H], oldest first: [fill, H]."""
    K = ring.shape[0]
    if fill < K:
        return ring[:fill].copy()
    return np.concatenate([ring[next_slot:], ring[:next_slot]])


def attend_step(
    params: Mapping[str, np.ndarray], columns: Mapping[str, np.ndarray], row: int, h: np.ndarray
) -> np.ndarray:
    """Push ``h`` into stream ``row``'s ring (in place) and return the attention context [H] (float64)."""
    ring, nexts, fills = columns[RING_COLUMN], columns[NEXT_COLUMN], columns[FILL_COLUMN]
    K, H = ring.shape[1], ring.shape[2]
    if h.shape != (H,):
        raise ModelError(f"hidden state must be [{H}], got {h.shape}")
    slot = int(nexts[row])
    ring[row, slot] = h
    nexts[row] = (slot + 1) % K
    fills[row] = min(int(fills[row]) + 1, K)
    h = ring[row, slot].astype(np.float64)  # the stored (float32) state, exactly what later events attend to
    filled = ring[row, : int(fills[row])].astype(np.float64)
    q = params["attention.query.weight"].astype(np.float64) @ h
    keys = filled @ params["attention.key.weight"].astype(np.float64).T
    values = filled @ params["attention.value.weight"].astype(np.float64).T
    logits = keys @ q / np.sqrt(H)
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    return np.asarray(weights @ values)


def attend_batch(
    params: Mapping[str, np.ndarray], columns: Mapping[str, np.ndarray], rows: np.ndarray, hidden: np.ndarray
) -> np.ndarray:
    """Apply :func:`attend_step` to events in arrival order (rows may repeat); returns contexts [B, H]."""
    return np.stack([attend_step(params, columns, int(r), np.asarray(h)) for r, h in zip(rows, hidden, strict=True)])
