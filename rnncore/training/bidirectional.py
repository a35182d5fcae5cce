"""The bidirectional (offline, non-causal) twin of ``ForecastRNN``: module, training and event-log rescoring.

Layout and semantics: ``rnncore.model.bidirectional``. ``rnn`` and ``rnn_reverse`` are independent
``torch.nn.RNN/GRU/LSTM(batch_first=True)`` stacks (not ``bidirectional=True``, whose upper layers mix both
directions and would let the forward state see the forecast value); ``head`` is ``nn.Linear(2H, 2F)``.

Training (documented choice): each stream's training steps are cut into segments of ``segment_length`` rows,
each fed with ``warmup`` unscored events of context on both sides (clamped to the stream's training events),
both stacks starting from the zero state at the window's edges; full backpropagation through the window.
Validation scores whole streams from their first to their last event, as ``rnnwatch score --bidirectional``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnncore import calibration
from rnncore.contract import EventRecord
from rnncore.errors import TrainingError
from rnncore.kernels.preprocess import normalise_sequence
from rnncore.model.bidirectional import backward_inputs, ensure_bidirectional, event_surprise
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.training.baselines import ForecastScore, choose_ewma_alpha, score_forecasts
from rnncore.training.dataset import Dataset
from rnncore.training.module import gaussian_nll, make_recurrent_stack
from rnncore.training.trainer import (
    EvaluationReport,
    TrainConfig,
    TrainResult,
    _BestEpoch,
    _Optimisation,
    baseline_scores,
    fresh_module,
)


class BidirectionalRNN(nn.Module):
    """Forward + backward stacks and a head on both: row t of the output forecasts event t+1 (interpolation)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not config.bidirectional:
            raise TrainingError("BidirectionalRNN needs ModelConfig(direction='bidirectional')")
        self.config = config
        self.rnn = make_recurrent_stack(config)
        self.rnn_reverse = make_recurrent_stack(config)
        self.head = nn.Linear(config.head_input_size, 2 * config.n_features)

    def forward(
        self, forward_inputs: Tensor, backward_inputs: Tensor, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Inputs [B, T, I] (both in time order, sequences left-aligned, ``lengths`` [B] real steps) -> (mu, sigma)
        [B, T, F]; row t uses the forward state after step t and the backward state after step t+2."""
        B, T, _ = forward_inputs.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        hidden_forward, _ = self.rnn(forward_inputs)
        flip = _flip_index(lengths, T)
        reversed_inputs = torch.gather(backward_inputs, 1, flip[..., None].expand_as(backward_inputs))
        hidden_reversed, _ = self.rnn_reverse(reversed_inputs)
        hidden_backward = torch.gather(hidden_reversed, 1, flip[..., None].expand_as(hidden_reversed))
        H = self.config.hidden_size
        shifted = torch.cat([hidden_backward[:, 2:], hidden_backward.new_zeros(B, min(2, T), H)], dim=1)
        steps = torch.arange(T)[None, :]
        shifted = shifted * (steps + 2 < lengths[:, None]).to(shifted.dtype)[..., None]
        out = self.head(torch.cat([hidden_forward, shifted], dim=-1))
        F = self.config.n_features
        return out[..., :F], nn.functional.softplus(out[..., F:]) + self.config.min_scale


def _flip_index(lengths: Tensor, T: int) -> Tensor:
    """[B, T] index that reverses each sequence's first ``lengths[b]`` steps and leaves padding in place."""
    steps = torch.arange(T)[None, :]
    return torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)


def export_bidirectional(module: BidirectionalRNN) -> ModelWeights:
    """Copy the module's parameters into validated float32 ``ModelWeights`` (names = ``config.param_shapes()``)."""
    state = module.state_dict()
    params = {name: state[name].detach().cpu().numpy().astype(np.float32) for name in module.config.param_shapes()}
    return ModelWeights(config=module.config, params=params)


def bidirectional_from_weights(weights: ModelWeights) -> BidirectionalRNN:
    """Build a module holding exactly ``weights`` (an artifact trained with ``--bidirectional``)."""
    ensure_bidirectional(weights.config, "the bidirectional scorer")
    module = BidirectionalRNN(weights.config)
    state = {name: torch.from_numpy(np.array(array, copy=True)) for name, array in weights.params.items()}
    module.load_state_dict(state, strict=True)
    return module


def _stack(arrays: Sequence[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-align variable-length [T_i, width] arrays into [B, T_max, width] zeros; returns (batch, lengths)."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    batch = np.zeros((len(arrays), int(lengths.max()), width), dtype=np.float32)
    for b, array in enumerate(arrays):
        batch[b, : len(array)] = array
    return batch, lengths


@torch.no_grad()
def predict_bidirectional(
    module: BidirectionalRNN, forward: Sequence[np.ndarray], backward: Sequence[np.ndarray], batch_size: int = 64
) -> list[np.ndarray]:
    """Whole-stream forecasts: per stream an array [T, 2, F] of (mu, sigma), row t for event t+1."""
    was_training = module.training
    module.eval()
    outputs: list[np.ndarray] = []
    I = module.config.input_size
    for first in range(0, len(forward), batch_size):
        xf, lengths = _stack(forward[first : first + batch_size], I)
        xb, _ = _stack(backward[first : first + batch_size], I)
        mu, sigma = module(torch.from_numpy(xf), torch.from_numpy(xb), torch.from_numpy(lengths))
        both = torch.stack([mu, sigma], dim=2).numpy()
        outputs.extend(both[b, :n] for b, n in enumerate(lengths.tolist()))
    module.train(was_training)
    return outputs


def evaluate_bidirectional(
    module: BidirectionalRNN,
    dataset: Dataset,
    backward: Sequence[np.ndarray],
    ewma_alpha: float,
    baselines: tuple[ForecastScore, ForecastScore],
) -> EvaluationReport:
    """Validation NLL/MAE on the same steps as the causal trainer (baselines stay causal: they are references)."""
    model = ForecastScore()
    forward = [s.seq.inputs for s in dataset.streams]
    for stream, forecast in zip(dataset.streams, predict_bidirectional(module, forward, backward), strict=True):
        steps = stream.validation_steps
        if steps.stop > steps.start:
            model.add(score_forecasts(stream.seq, forecast[:, 0], forecast[:, 1], steps, module.config.min_scale))
    return EvaluationReport(model, *baselines, ewma_alpha)


@dataclass(frozen=True)
class _Window:
    """Feed events [lo, hi) of stream ``stream``; loss on rows [start, end) (row t forecasts event t+1)."""

    stream: int
    lo: int
    hi: int
    start: int
    end: int


def make_windows(train_steps: Sequence[int], segment_length: int, context: int) -> list[_Window]:
    """Segments of each stream's training rows with ``context`` events either side, never past event train_steps."""
    windows = []
    for stream, n in enumerate(train_steps):
        for start in range(0, n, segment_length):
            end = min(start + segment_length, n)
            windows.append(_Window(stream, max(0, start - context), min(end + context, n) + 1, start, end))
    return windows


def _window_batch(
    windows: Sequence[_Window], dataset: Dataset, backward: Sequence[np.ndarray]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    xf, lengths = _stack([dataset.streams[w.stream].seq.inputs[w.lo : w.hi] for w in windows], dataset_width(dataset))
    xb, _ = _stack([backward[w.stream][w.lo : w.hi] for w in windows], xf.shape[2])
    F = dataset.streams[0].seq.targets.shape[1]
    y = np.zeros((len(windows), xf.shape[1], F), dtype=np.float32)
    mask = np.zeros((len(windows), xf.shape[1]), dtype=np.float32)
    for b, w in enumerate(windows):
        y[b, : w.hi - w.lo] = np.nan_to_num(dataset.streams[w.stream].seq.targets[w.lo : w.hi])
        mask[b, w.start - w.lo : w.end - w.lo] = 1.0
    tensors = (xf, xb, lengths, y, mask)
    return tuple(torch.from_numpy(a) for a in tensors)  # type: ignore[return-value]


def dataset_width(dataset: Dataset) -> int:
    """Recurrent input width of the dataset's sequences."""
    return int(dataset.streams[0].seq.inputs.shape[1])


def stream_backward_inputs(dataset: Dataset, config: ModelConfig) -> list[np.ndarray]:
    """Backward-stack inputs [T, I] of every stream (reverse-time normalisation)."""
    return [backward_inputs(s.seq.values, s.seq.times, config) for s in dataset.streams]


def train_bidirectional(dataset: Dataset, config: ModelConfig, settings: TrainConfig) -> TrainResult[BidirectionalRNN]:
    """Fit a fresh ``BidirectionalRNN``; Adam, clipping, cosine LR and early stopping as the causal trainer."""
    if settings.dropout > 0:
        raise TrainingError("dropout is implemented for the causal model only: train the bidirectional one without")
    module = fresh_module(dataset, config, settings, BidirectionalRNN)
    rng = np.random.default_rng(settings.seed)
    backward = stream_backward_inputs(dataset, config)
    train_steps = [s.train_steps for s in dataset.streams]
    windows = make_windows(train_steps, settings.segment_length, settings.warmup)
    per_epoch = -(-len(windows) // settings.batch_size)
    optimisation = _Optimisation(module, settings, per_epoch * settings.epochs)
    alpha = choose_ewma_alpha([s.seq for s in dataset.streams], train_steps, config.min_scale)
    baselines = baseline_scores(dataset, alpha, config.min_scale)
    result = TrainResult(module, export_bidirectional(module), EvaluationReport(ForecastScore(), *baselines, alpha))
    best = _BestEpoch(module, settings)
    validate = (
        (lambda: evaluate_bidirectional(module, dataset, backward, alpha, baselines).model.nll)
        if dataset.validation_steps
        else None
    )
    for epoch in range(1, settings.epochs + 1):
        started, losses = time.perf_counter(), []
        order = rng.permutation(len(windows))
        for first in range(0, len(order), settings.batch_size):
            group = [windows[i] for i in order[first : first + settings.batch_size]]
            xf, xb, lengths, y, mask = _window_batch(group, dataset, backward)
            mu, sigma = module(xf, xb, lengths)
            loss = (gaussian_nll(mu, sigma, y) * mask).sum() / mask.sum().clamp(min=1.0)
            losses.append(optimisation.update(loss))
            result.event_steps += int(lengths.sum())
            if best.out_of_budget(result):
                break
        if best.end_epoch(result, epoch, started, losses, validate):
            break
    best.restore_best()
    result.weights = export_bidirectional(module)
    result.report = evaluate_bidirectional(module, dataset, backward, alpha, baselines)
    return result


@dataclass(frozen=True)
class BidirectionalScores:
    """Per-record outputs in the order of the records given: surprise (NaN for a stream's first event), score."""

    nll: np.ndarray  # float64 [N]
    scores: np.ndarray  # float32 [N], in [0, 1]


def score_records(
    weights: ModelWeights,
    records: Sequence[EventRecord],
    params: calibration.ScoringParams | None = None,
    batch_size: int = 64,
) -> BidirectionalScores:
    """Score every record with a bidirectional model: surprise from both directions, then the service's
    per-stream calibration applied in time order (so scores are in [0, 1] like the causal scorer's)."""
    module = bidirectional_from_weights(weights)
    config = weights.config
    streams: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        streams.setdefault(record.key, []).append(index)
    keys = list(streams)
    indices, forward, backward, targets = [], [], [], []
    for key in keys:
        idx = np.asarray(streams[key])
        times = np.array([records[i].time for i in idx], dtype=np.float64)
        order = idx[np.argsort(times, kind="stable")]
        values = np.array([records[i].values for i in order], dtype=np.float64).reshape(len(order), -1)
        times = np.array([records[i].time for i in order], dtype=np.float64)
        seq = normalise_sequence(values, times, config)
        indices.append(order)
        forward.append(seq.inputs)
        backward.append(backward_inputs(values, times, config))
        targets.append(seq.targets)
    nll = np.full(len(records), np.nan)
    forecasts = predict_bidirectional(module, forward, backward, batch_size)
    for order, forecast, target in zip(indices, forecasts, targets, strict=True):
        nll[order] = event_surprise(forecast[:, 0].astype(np.float64), forecast[:, 1].astype(np.float64), target)
    return BidirectionalScores(nll=nll, scores=calibrate_in_time_order(records, keys, nll, params))


def calibrate_in_time_order(
    records: Sequence[EventRecord], keys: Sequence[str], nll: np.ndarray, params: calibration.ScoringParams | None
) -> np.ndarray:
    """Per-stream likelihood calibration of surprises (``rnncore.calibration``), events in stable time order."""
    params = params or calibration.ScoringParams()
    row_of = {key: row for row, key in enumerate(keys)}
    order = np.argsort(np.array([r.time for r in records], dtype=np.float64), kind="stable")
    columns: dict[str, Any] = {
        name: np.zeros((max(len(keys), 1), *shape), dtype=dtype)
        for name, (shape, dtype) in calibration.score_schema(params).items()
    }
    rows = np.array([row_of[records[i].key] for i in order], dtype=np.int64)
    status = np.zeros(len(order), dtype=np.int8)
    out = np.zeros(len(order), dtype=np.float32)
    calibration.calibrate(params, columns, rows, nll[order].astype(np.float32), status, out)
    scores = np.zeros(len(records), dtype=np.float32)
    scores[order] = out
    return scores
