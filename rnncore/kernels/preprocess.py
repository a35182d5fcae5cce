"""Causal per-stream normalisation of whole sequences: the trainer's view of the per-event contract.

For one stream's events (values ``v_t``, times ``t_t``) this computes, exactly as the online core does per
event (contract steps 1, 3 and 4): the running mean/variance after each event, the recurrent input ``x_t``
and the training target ``y_t = clip((v_{t+1} - m_t) / sqrt(var_t + eps))`` for the next value, all causal.
Statistics are accumulated in float64 (the online state stores them in float32; the difference is far
below the 1e-5 forecast tolerance for inputs within the clip range).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from rnncore.kernels.errors import KernelInputError
from rnncore.model.config import ModelConfig


@dataclass(frozen=True)
class NormalisedSequence:
    """One stream after causal normalisation; row ``t`` describes the state right after event ``t``.

    ``inputs[t]`` is the recurrent input for event t; ``targets[t]`` the clipped normalised next value
    (the last row is NaN: there is no next event); ``mean``/``std`` are the stats after event t, so the
    forecast in original units is ``mean + mu * std`` with scale ``sigma * std``.
    """

    inputs: np.ndarray  # [T, input_size] float32
    targets: np.ndarray  # [T, F] float32, last row NaN
    mean: np.ndarray  # [T, F] float64
    std: np.ndarray  # [T, F] float64, sqrt(var + eps)
    values: np.ndarray  # [T, F] float64, the raw values
    times: np.ndarray  # [T] float64

    def __len__(self) -> int:
        return int(self.times.shape[0])


# Numba flags for this module, in one place. Unlike rnncore.kernels (fastmath, float32) this is the trainer's
# exact float64 view of the contract, so no fastmath: it must agree with the reference to the last bits.
_jit = njit(cache=True, error_model="numpy")


@_jit
def _normalise_kernel(
    values: np.ndarray,
    times: np.ndarray,
    norm_window: int,
    eps: float,
    clip: float,
    dt_scale: float,
    time_delta: bool,
    inputs: np.ndarray,
    targets: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
) -> None:
    """Contract steps 1, 3, 4 per event; then targets[t] = clip((v[t+1] - m_t) / std_t)."""
    T, F = values.shape
    m = np.zeros(F)
    var = np.zeros(F)
    for t in range(T):
        n = t + 1
        alpha = max(1.0 / n, 1.0 / norm_window)
        for f in range(F):
            delta = values[t, f] - m[f]
            m[f] += alpha * delta
            var[f] = (1.0 - alpha) * (var[f] + alpha * delta * delta)
            s = np.sqrt(var[f] + eps)
            mean[t, f] = m[f]
            std[t, f] = s
            inputs[t, f] = min(max((values[t, f] - m[f]) / s, -clip), clip)
        if time_delta:
            dt = max(times[t] - times[t - 1], 0.0) if t > 0 else 0.0
            inputs[t, F] = np.log1p(dt / dt_scale)
    for t in range(T - 1):
        for f in range(F):
            targets[t, f] = min(max((values[t + 1, f] - mean[t, f]) / std[t, f], -clip), clip)
    for f in range(F):
        targets[T - 1, f] = np.nan


def _validated(values: np.ndarray, times: np.ndarray, config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    times = np.ascontiguousarray(times, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != config.n_features:
        raise KernelInputError(f"values must be [T, {config.n_features}], got shape {values.shape}")
    if times.shape != (values.shape[0],):
        raise KernelInputError(f"times must be [T] with T={values.shape[0]}, got shape {times.shape}")
    if values.shape[0] == 0:
        raise KernelInputError("cannot normalise an empty sequence")
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(times))):
        raise KernelInputError("values and times must be finite (the online core rejects such events)")
    return np.ascontiguousarray(values), times


def normalise_sequence(values: np.ndarray, times: np.ndarray, config: ModelConfig) -> NormalisedSequence:
    """Normalise one stream causally (Numba kernel); ``values`` is [T] or [T, F], ``times`` [T] seconds."""
    values, times = _validated(values, times, config)
    T, F = values.shape
    inputs = np.zeros((T, config.input_size), dtype=np.float32)
    targets = np.empty((T, F), dtype=np.float32)
    mean = np.empty((T, F), dtype=np.float64)
    std = np.empty((T, F), dtype=np.float64)
    _normalise_kernel(
        values,
        times,
        config.norm_window,
        config.norm_eps,
        config.input_clip,
        config.dt_scale,
        config.time_delta_feature,
        inputs,
        targets,
        mean,
        std,
    )
    return NormalisedSequence(inputs=inputs, targets=targets, mean=mean, std=std, values=values, times=times)
