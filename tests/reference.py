"""The slow, obvious implementations the fast code is tested against: one event at a time, float64, literal.

They follow the per-event contract (``rnncore/contract.py``) step by step, so a parity test failing here
points at the fast code. Kept out of the product: nothing under ``rnncore/`` or ``stream/`` imports this.

* ``step_event`` / ``advance_reference``: the Numba step kernels (``rnncore.kernels.advance``);
* ``reference_forecasts``: the PyTorch training module and the kernels over one whole stream;
* ``normalise_sequence_reference``: the offline normalisation kernel (``rnncore.kernels.preprocess``);
* ``calibrate_reference``: the per-stream score calibration (``rnncore.calibration.calibrate``);
* ``windowed_gaussian_reference``: NAB's windowed-Gaussian baseline (``stream.evaluation.baselines``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnncore.calibration import ScoringParams, _check_batch, _tail_score, _winsorised
from rnncore.kernels import layout
from rnncore.kernels.layout import StepOutput
from rnncore.kernels.preprocess import NormalisedSequence, _validated
from rnncore.model.attention import allocate_rings, attend_step
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.evaluation.baselines import STEP_SIZE, WINDOW_SIZE


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


def reference_forecasts(weights: ModelWeights, values: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feed one stream event by event from a fresh row; returns (mu, sigma) [T, F] in normalised units.

    With an attention head, the ring buffer follows ``rnncore.model.attention`` (float32 ring, float64 arithmetic).
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


def normalise_sequence_reference(values: np.ndarray, times: np.ndarray, config: ModelConfig) -> NormalisedSequence:
    """Slow, obvious per-event implementation of the contract that the kernel is tested against."""
    values, times = _validated(values, times, config)
    T, F = values.shape
    eps, clip = config.norm_eps, config.input_clip
    m, var = np.zeros(F), np.zeros(F)
    inputs, targets = [], []
    means, stds = [], []
    for t in range(T):
        n = t + 1
        alpha = max(1.0 / n, 1.0 / config.norm_window)
        delta = values[t] - m
        m = m + alpha * delta
        var = (1.0 - alpha) * (var + alpha * delta**2)
        s = np.sqrt(var + eps)
        x = list(np.clip((values[t] - m) / s, -clip, clip))
        if config.time_delta_feature:
            dt = max(times[t] - times[t - 1], 0.0) if t > 0 else 0.0
            x.append(np.log1p(dt / config.dt_scale))
        inputs.append(x)
        means.append(m.copy())
        stds.append(s)
    for t in range(T):
        if t + 1 < T:
            targets.append(np.clip((values[t + 1] - means[t]) / stds[t], -clip, clip))
        else:
            targets.append(np.full(F, np.nan))
    return NormalisedSequence(
        inputs=np.asarray(inputs, dtype=np.float32).reshape(T, config.input_size),
        targets=np.asarray(targets, dtype=np.float32).reshape(T, F),
        mean=np.asarray(means).reshape(T, F),
        std=np.asarray(stds).reshape(T, F),
        values=values,
        times=times,
    )


def calibrate_reference(
    params: ScoringParams,
    columns: Mapping[str, np.ndarray],
    rows: np.ndarray,
    nll: np.ndarray,
    status: np.ndarray,
    out_scores: np.ndarray,
    out_rarity: np.ndarray | None = None,
    prior: Any = None,
) -> None:
    """Slow, obvious pure-Python version of :func:`calibrate` (float64 arithmetic), for tests; ``prior``: a
    ``CalibrationPrior`` a fresh row starts at (``out_rarity`` is not computed here)."""
    stats = _check_batch(columns, rows, nll, status, out_scores)
    pseudo = params.prior_events if prior is not None else 0
    warm_at = pseudo + (params.prior_warmup_events if prior is not None else params.warmup_events)
    for i in range(rows.shape[0]):
        s = float(nll[i])
        if status[i] != 0 or not math.isfinite(s):
            out_scores[i] = 0.0
            continue
        s = min(max(s, -params.max_surprise), params.max_surprise)
        row = stats[int(rows[i])]
        if prior is not None and row[0] == 0.0:
            mean_s, var_s, mean_a, var_a = prior.moments()
            row[:6] = [pseudo, mean_a, mean_s, var_s, mean_a, var_a]
        n, short, mean_s, var_s, mean_a, var_a, recent = (float(v) for v in row)
        a = short + (s - short) / min(n + 1.0, params.short_window)
        warm = n >= warm_at
        score = 0.0
        if warm:
            floor = params.tail_floor
            point = _tail_score(s, mean_s, var_s, params.min_var, floor)
            score = max(point, _tail_score(a, mean_a, var_a, params.min_var, floor))
            if params.refractory_events > 0:
                decayed = recent * (1.0 - 1.0 / params.refractory_events)
                score, recent = (score if score > recent else 0.0), max(decayed, score)
        out_scores[i] = score
        limit = params.outlier_sigmas if warm or (prior is not None and n >= pseudo) else math.inf
        alpha = 1.0 / min(n + 1.0, params.long_window)
        new = [min(n + 1.0, params.long_window), a]
        for x, mean, var in ((s, mean_s, var_s), (a, mean_a, var_a)):
            d = _winsorised(x - mean, var, params.min_var, limit)
            new += [mean + alpha * d, (1.0 - alpha) * (var + alpha * d * d)]
        row[:] = [*new, recent]


def windowed_gaussian_reference(
    values: np.ndarray, window_size: int = WINDOW_SIZE, step_size: int = STEP_SIZE
) -> np.ndarray:
    """Slow, literal version of :func:`windowed_gaussian` (append, step buffer, recompute), for tests."""
    window: list[float] = []
    buffer: list[float] = []
    mean, std = 0.0, 1e-6
    out = []
    for value in np.asarray(values, dtype=np.float64).tolist():
        score = 0.0
        if window:
            z = abs(value - mean) / std
            score = 1.0 - 0.5 * math.erfc(z / math.sqrt(2.0))
        changed = False
        if len(window) < window_size:
            window.append(value)
            changed = True
        else:
            buffer.append(value)
            if len(buffer) == step_size:
                window = window[step_size:] + buffer
                buffer = []
                changed = True
        if changed:
            mean, std = float(np.mean(window)), float(np.std(window))
            std = std if std != 0.0 else 1e-6
        out.append(score)
    return np.array(out)
