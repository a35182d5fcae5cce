"""A slow per-event numpy implementation of the contract (steps 1-7), the parity oracle for trainer and kernels.

No torch: it reads ``ModelWeights`` and follows torch.nn.RNN/GRU/LSTM equations literally, one event at a time.
"""

from __future__ import annotations

import numpy as np

from rnncore.attention import allocate_rings, attend_step
from rnncore.kernels.reference import cell_step
from rnncore.model import ModelWeights


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def reference_forecasts(weights: ModelWeights, values: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feed one stream event by event from a fresh row; returns (mu, sigma) [T, F] in normalised units.

    With an attention head, the ring buffer follows ``rnncore.attention`` (float32 ring, float64 arithmetic).
    """
    cfg = weights.config
    p = {name: a.astype(np.float64) for name, a in weights.params.items()}
    values = np.asarray(values, dtype=np.float64).reshape(len(times), cfg.n_features)
    F, H, L = cfg.n_features, cfg.hidden_size, cfg.num_layers
    h = np.zeros((L, H))
    c = np.zeros((L, H))
    m, var = np.zeros(F), np.zeros(F)
    last_time, count = 0.0, 0
    mus, sigmas = np.empty((len(times), F)), np.empty((len(times), F))
    rings = allocate_rings(cfg, 1) if cfg.attention_window else None
    for t, (v, time) in enumerate(zip(values, times, strict=True)):
        dt = max(time - last_time, 0.0) if count > 0 else 0.0
        alpha = max(1.0 / (count + 1), 1.0 / cfg.norm_window)
        delta = v - m
        m = m + alpha * delta
        var = (1.0 - alpha) * (var + alpha * delta**2)
        x = np.clip((v - m) / np.sqrt(var + cfg.norm_eps), -cfg.input_clip, cfg.input_clip)
        if cfg.time_delta_feature:
            x = np.append(x, np.log1p(dt / cfg.dt_scale))
        for k in range(L):
            h[k], c[k] = cell_step(cfg.cell, x, h[k], c[k], p, k)
            x = h[k]
        head_input = h[L - 1]
        if rings is not None:
            head_input = np.concatenate([head_input, attend_step(p, rings, 0, h[L - 1])])
        o = p["head.weight"] @ head_input + p["head.bias"]
        mus[t] = o[:F]
        sigmas[t] = _softplus(o[F:]) + cfg.min_scale
        last_time, count = float(time), count + 1
    return mus, sigmas
