"""Slow, obvious numpy implementation of the per-event contract, one event at a time: the kernels' oracle.

Same columns and outputs as ``advance``; maths in float64 with exact tanh/sigmoid, state stored in the
columns' float32, so the fast kernel may differ only by float32 rounding and its tanh approximation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from rnncore.kernels import layout
from rnncore.kernels.step import StepOutput
from rnncore.model import ModelWeights


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def cell_step(
    cell: str, x: np.ndarray, h: np.ndarray, c: np.ndarray, p: Mapping[str, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """One layer of torch.nn.RNN(tanh)/GRU/LSTM in float64; returns (h', c') (c' is c unchanged unless LSTM)."""
    W_ih = p[f"rnn.weight_ih_l{k}"].astype(np.float64)
    W_hh = p[f"rnn.weight_hh_l{k}"].astype(np.float64)
    gi = W_ih @ x + p[f"rnn.bias_ih_l{k}"]
    gh = W_hh @ h + p[f"rnn.bias_hh_l{k}"]
    if cell == "rnn":
        return np.tanh(gi + gh), c
    H = h.shape[0]
    if cell == "gru":
        r = _sigmoid(gi[:H] + gh[:H])
        z = _sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
        n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
        return (1.0 - z) * n + z * h, c
    g = gi + gh
    i, f, gg, o = _sigmoid(g[:H]), _sigmoid(g[H : 2 * H]), np.tanh(g[2 * H : 3 * H]), _sigmoid(g[3 * H :])
    c_new = f * c + i * gg
    return o * np.tanh(c_new), c_new


def step_event(
    weights: ModelWeights, columns: Mapping[str, np.ndarray], r: int, t: float, v: np.ndarray
) -> tuple[int, float, np.ndarray, np.ndarray]:
    """Apply one event to row r (contract steps 0-7); returns (status, nll, mean, scale)."""
    cfg, p = weights.config, weights.params
    F, eps = cfg.n_features, cfg.norm_eps
    v = np.asarray(v, dtype=np.float32).astype(np.float64)
    if not (math.isfinite(t) and np.all(np.isfinite(v))):
        nan = np.full(F, np.nan)
        return 1, math.nan, nan, nan
    norm, forecast = columns[layout.NORM][r], columns[layout.FORECAST][r]
    count = int(columns[layout.COUNT][r])
    m, var = norm[0].astype(np.float64), norm[1].astype(np.float64)
    dt = max(t - float(columns[layout.LAST_TIME][r]), 0.0) if count > 0 else 0.0
    nll = math.nan
    if count > 0:
        mu, sigma = forecast[0].astype(np.float64), forecast[1].astype(np.float64)
        z = ((v - m) / np.sqrt(var + eps) - mu) / sigma
        nll = float(np.mean(0.5 * z**2 + np.log(sigma) + 0.5 * math.log(2 * math.pi)))
    alpha = max(1.0 / (count + 1), 1.0 / cfg.norm_window)
    delta = v - m
    norm[0] = m + alpha * delta
    norm[1] = (1.0 - alpha) * (var + alpha * delta**2)
    m, var = norm[0].astype(np.float64), norm[1].astype(np.float64)  # the stored float32 stats
    sd = np.sqrt(var + eps)
    x = np.clip((v - m) / sd, -cfg.input_clip, cfg.input_clip)
    if cfg.time_delta_feature:
        x = np.append(x, math.log1p(dt / cfg.dt_scale))
    state = columns[layout.RECURRENT][r]
    for k in range(cfg.num_layers):
        h = state[k, 0].astype(np.float64)
        c = state[k, 1].astype(np.float64) if cfg.cell == "lstm" else h
        h, c = cell_step(cfg.cell, x, h, c, p, k)
        state[k, 0] = h
        if cfg.cell == "lstm":
            state[k, 1] = c
        x = h
    o = p["head.weight"].astype(np.float64) @ x + p["head.bias"]
    mu, sigma = o[:F], _softplus(o[F:]) + cfg.min_scale
    forecast[0], forecast[1] = mu, sigma
    columns[layout.LAST_TIME][r] = t
    columns[layout.COUNT][r] = count + 1
    return 0, nll, m + forecast[0].astype(np.float64) * sd, forecast[1].astype(np.float64) * sd


def advance_reference(
    weights: ModelWeights,
    columns: Mapping[str, np.ndarray],
    rows: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    out: StepOutput,
) -> None:
    """The contract of ``advance``, applied one event at a time in arrival order."""
    for i in range(rows.shape[0]):
        status, nll, mean, scale = step_event(weights, columns, int(rows[i]), float(times[i]), values[i])
        out.status[i], out.nll[i], out.mean[i], out.scale[i] = status, nll, mean, scale
