"""A slow per-event numpy implementation of the contract (steps 1-7), the parity oracle for trainer and kernels.

No torch: it reads ``ModelWeights`` and follows torch.nn.RNN/GRU/LSTM equations literally, one event at a time.
"""

from __future__ import annotations

import numpy as np

from rnncore.model import ModelWeights


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def reference_cell_step(
    cell: str, p: dict[str, np.ndarray], k: int, x: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One layer ``k`` step in float64 with PyTorch's gate order (GRU r,z,n; LSTM i,f,g,o); returns (h, c)."""
    W_ih, W_hh = p[f"rnn.weight_ih_l{k}"], p[f"rnn.weight_hh_l{k}"]
    b_ih, b_hh = p[f"rnn.bias_ih_l{k}"], p[f"rnn.bias_hh_l{k}"]
    gi = W_ih @ x + b_ih
    gh = W_hh @ h + b_hh
    if cell == "rnn":
        return np.tanh(gi + gh), c
    H = h.shape[0]
    if cell == "gru":
        r = _sigmoid(gi[:H] + gh[:H])
        z = _sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
        n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
        return (1.0 - z) * n + z * h, c
    gates = gi + gh
    i, f = _sigmoid(gates[:H]), _sigmoid(gates[H : 2 * H])
    g, o = np.tanh(gates[2 * H : 3 * H]), _sigmoid(gates[3 * H :])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def reference_forecasts(weights: ModelWeights, values: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feed one stream event by event from a fresh row; returns (mu, sigma) [T, F] in normalised units."""
    cfg = weights.config
    p = {name: a.astype(np.float64) for name, a in weights.params.items()}
    values = np.asarray(values, dtype=np.float64).reshape(len(times), cfg.n_features)
    F, H, L = cfg.n_features, cfg.hidden_size, cfg.num_layers
    h = np.zeros((L, H))
    c = np.zeros((L, H))
    m, var = np.zeros(F), np.zeros(F)
    last_time, count = 0.0, 0
    mus, sigmas = np.empty((len(times), F)), np.empty((len(times), F))
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
            h[k], c[k] = reference_cell_step(cfg.cell, p, k, x, h[k], c[k])
            x = h[k]
        o = p["head.weight"] @ h[L - 1] + p["head.bias"]
        mus[t] = o[:F]
        sigmas[t] = _softplus(o[F:]) + cfg.min_scale
        last_time, count = float(time), count + 1
    return mus, sigmas
