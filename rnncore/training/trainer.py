"""Truncated BPTT training of ``ForecastRNN`` with Adam, gradient clipping, cosine LR and early stopping.

Loss: Gaussian NLL of each step's forecast against the clipped normalised next value (the per-event
contract's training rule). Windows and state carry: see ``rnncore.training.windows``. Early stopping watches
the validation NLL (the last ``validation_fraction`` of each stream's time range) after every epoch and keeps
the best weights. ``max_minutes`` and ``max_event_steps`` cap the work (the partial epoch is still validated).
Same data, config and seed -> the same model, as long as ``max_minutes`` does not cut training short and
the thread count is the same.

Irregular sampling: the model sees the gap only through ``ModelConfig.time_delta_feature``
(``log1p(dt / dt_scale)`` as an extra input); the state is never reset because of a gap.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from rnncore.errors import TrainingError
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.training.baselines import (
    ForecastScore,
    choose_ewma_alpha,
    ewma_forecast,
    persistence_forecast,
    score_forecasts,
)
from rnncore.training.dataset import Dataset
from rnncore.training.module import AttentionState, ForecastRNN, ModelState, export_weights, gaussian_nll
from rnncore.training.windows import Batch, Segment, assign_lanes, count_batches, iterate_batches, make_segments


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings; every one is a CLI flag of ``rnnwatch train``."""

    bptt: int = 64
    batch_size: int = 32
    segment_length: int = 1024
    warmup: int = 128
    epochs: int = 20
    learning_rate: float = 3e-3
    final_lr_fraction: float = 0.05
    weight_decay: float = 0.0
    dropout: float = 0.0  # between stacked layers, training only (never on the recurrent connections)
    grad_clip: float = 1.0
    patience: int = 4
    max_minutes: float | None = None
    max_event_steps: int | None = None
    seed: int = 0
    threads: int | None = None
    eval_batch_size: int = 256
    progress: bool = True

    def __post_init__(self) -> None:
        if self.bptt < 1 or self.batch_size < 1 or self.epochs < 1 or self.segment_length < self.bptt:
            raise TrainingError("need bptt >= 1, batch_size >= 1, epochs >= 1 and segment_length >= bptt")
        if not (self.learning_rate > 0 and self.grad_clip > 0 and 0 < self.final_lr_fraction <= 1):
            raise TrainingError("learning_rate and grad_clip must be > 0, final_lr_fraction in (0, 1]")
        if not 0.0 <= self.dropout < 1.0:
            raise TrainingError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class EvaluationReport:
    """Validation scores of the model and the two baselines on the same steps."""

    model: ForecastScore
    persistence: ForecastScore
    ewma: ForecastScore
    ewma_alpha: float

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON metadata."""
        rows = {"model": self.model, "persistence": self.persistence, "ewma": self.ewma}
        finite = lambda x: x if math.isfinite(x) else None  # noqa: E731 - JSON has no NaN
        scores: dict[str, Any] = {name: {"nll": finite(s.nll), "mae": finite(s.mae)} for name, s in rows.items()}
        return {**scores, "steps": self.model.steps, "ewma_alpha": self.ewma_alpha}


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


@dataclass
class TrainResult(Generic[ModuleT]):
    """The best model, its weights, per-epoch history and timing."""

    module: ModuleT
    weights: ModelWeights
    report: EvaluationReport
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped: str = "epochs"
    event_steps: int = 0
    train_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        """Training event-steps (forward + backward, warm-up included) per second of optimisation time."""
        return self.event_steps / self.train_seconds if self.train_seconds > 0 else 0.0


def _reset_state(state: ModelState, keep: torch.Tensor) -> ModelState:
    """Zero the lanes that start a new segment and cut the graph (truncated BPTT); empties their rings."""
    if isinstance(state, AttentionState):
        recurrent = _reset_state(state.recurrent, keep)
        assert not isinstance(recurrent, AttentionState)
        return AttentionState(recurrent, state.ring.detach() * keep[:, None, None], state.fill * keep.long())
    factor = keep[None, :, None]
    if isinstance(state, tuple):
        return (state[0].detach() * factor, state[1].detach() * factor)
    return state.detach() * factor


def _batch_loss(module: ForecastRNN, batch: Batch, state: ModelState) -> tuple[torch.Tensor, ModelState]:
    x = torch.from_numpy(batch.inputs)
    y = torch.from_numpy(np.nan_to_num(batch.targets))
    mask = torch.from_numpy(batch.mask)
    state = _reset_state(state, torch.from_numpy(~batch.reset).float())
    mu, sigma, state = module(x, state)
    nll = gaussian_nll(mu, sigma, y)
    return (nll * mask).sum() / mask.sum().clamp(min=1.0), state


@torch.no_grad()
def predict(module: ForecastRNN, dataset: Dataset, batch_size: int = 256, chunk: int = 2048) -> list[np.ndarray]:
    """Forecasts of every stream run from its first event: per stream an array [T, 2, F] of (mu, sigma).

    Runs in eval mode (no dropout: the online model) and puts the module back in the mode it was in."""
    was_training = module.training
    module.eval()
    outputs: list[np.ndarray] = []
    F = module.config.n_features
    for first in range(0, len(dataset.streams), batch_size):
        group = dataset.streams[first : first + batch_size]
        T = max(len(s.seq) for s in group)
        x = np.zeros((len(group), T, module.config.input_size), dtype=np.float32)
        for b, stream in enumerate(group):
            x[b, : len(stream.seq)] = stream.seq.inputs
        result = np.empty((len(group), T, 2, F), dtype=np.float32)
        state: ModelState | None = None
        for lo in range(0, T, chunk):
            mu, sigma, state = module(torch.from_numpy(x[:, lo : lo + chunk]), state)
            result[:, lo : lo + chunk, 0] = mu.numpy()
            result[:, lo : lo + chunk, 1] = sigma.numpy()
        outputs.extend(result[b, : len(stream.seq)] for b, stream in enumerate(group))
    module.train(was_training)
    return outputs


def baseline_scores(dataset: Dataset, ewma_alpha: float, min_scale: float) -> tuple[ForecastScore, ForecastScore]:
    """Validation scores of persistence and EWMA (they do not change while the model trains)."""
    persistence, ewma = ForecastScore(), ForecastScore()
    for stream in dataset.streams:
        steps = stream.validation_steps
        if steps.stop > steps.start:
            persistence.add(score_forecasts(stream.seq, *persistence_forecast(stream.seq), steps, min_scale))
            ewma.add(score_forecasts(stream.seq, *ewma_forecast(stream.seq, ewma_alpha), steps, min_scale))
    return persistence, ewma


def evaluate(
    module: ForecastRNN,
    dataset: Dataset,
    ewma_alpha: float,
    batch_size: int = 256,
    baselines: tuple[ForecastScore, ForecastScore] | None = None,
) -> EvaluationReport:
    """Validation NLL and MAE of the model, persistence and EWMA on the validation steps of every stream."""
    min_scale = module.config.min_scale
    persistence, ewma = baselines or baseline_scores(dataset, ewma_alpha, min_scale)
    model = ForecastScore()
    for stream, forecast in zip(dataset.streams, predict(module, dataset, batch_size), strict=True):
        steps = stream.validation_steps
        if steps.stop > steps.start:
            model.add(score_forecasts(stream.seq, forecast[:, 0], forecast[:, 1], steps, min_scale))
    return EvaluationReport(model, persistence, ewma, ewma_alpha)


def _cosine(total: int, final_fraction: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        progress = min(step / max(total, 1), 1.0)
        return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _planned_batches(segments: list[Segment], settings: TrainConfig) -> int:
    """Optimiser steps the LR schedule spans: all epochs, or fewer when ``max_event_steps`` ends training first."""
    per_epoch = count_batches(
        assign_lanes(segments, settings.batch_size, settings.bptt, np.random.default_rng(0)), settings.bptt
    )
    planned = per_epoch * settings.epochs
    if settings.max_event_steps:
        fed_per_batch = sum(seg.end - seg.feed_start for seg in segments) / max(per_epoch, 1)
        planned = min(planned, math.ceil(settings.max_event_steps / max(fed_per_batch, 1.0)))
    return planned


class _Optimisation:
    """Adam, gradient clipping and the cosine LR schedule over ``planned_batches``: one ``update`` per batch."""

    def __init__(self, module: torch.nn.Module, settings: TrainConfig, planned_batches: int) -> None:
        self.module, self.settings = module, settings
        self.optimiser = torch.optim.Adam(
            module.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        schedule = _cosine(planned_batches, settings.final_lr_fraction)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimiser, schedule)

    def update(self, loss: torch.Tensor) -> float:
        """Backward, clip, one optimiser and schedule step; returns the batch loss."""
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.settings.grad_clip)
        self.optimiser.step()
        self.scheduler.step()
        return float(loss.detach())


class _WithHead(Protocol):
    head: torch.nn.Linear


M = TypeVar("M", bound=_WithHead)


def fresh_module(dataset: Dataset, config: ModelConfig, settings: TrainConfig, make: Callable[[ModelConfig], M]) -> M:
    """The start both trainers share: refuse a dataset without training steps, seed torch (threads as set), build
    the module and start it at unit forecast scale (softplus(0.5413) = 1)."""
    if dataset.train_steps == 0:
        raise TrainingError("no training steps: streams are too short for the validation split")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    module = make(config)
    with torch.no_grad():
        module.head.bias[config.n_features :] = 0.5413
    return module


def train(dataset: Dataset, config: ModelConfig, settings: TrainConfig) -> TrainResult[ForecastRNN]:
    """Fit a fresh ``ForecastRNN`` to ``dataset``; returns the best epoch's model by validation NLL, in eval mode."""
    if settings.dropout > 0 and config.num_layers < 2:
        raise TrainingError(f"dropout {settings.dropout} acts between stacked layers: give --layers 2 or more")
    module = fresh_module(dataset, config, settings, lambda c: ForecastRNN(c, settings.dropout))
    rng = np.random.default_rng(settings.seed)
    inputs = [s.seq.inputs for s in dataset.streams]
    targets = [s.seq.targets for s in dataset.streams]
    train_steps = [s.train_steps for s in dataset.streams]
    segments = make_segments(train_steps, settings.segment_length, settings.warmup)
    optimisation = _Optimisation(module, settings, _planned_batches(segments, settings))
    alpha = choose_ewma_alpha([s.seq for s in dataset.streams], train_steps, config.min_scale)
    baselines = baseline_scores(dataset, alpha, config.min_scale)
    result = TrainResult(module, export_weights(module), EvaluationReport(ForecastScore(), *baselines, alpha))
    best = _BestEpoch(module, settings)
    # Without validation steps (validation_fraction 0), early stopping watches the training loss.
    validate = (
        (lambda: evaluate(module, dataset, alpha, settings.eval_batch_size, baselines).model.nll)
        if dataset.validation_steps
        else None
    )
    for epoch in range(1, settings.epochs + 1):
        lanes = assign_lanes(segments, settings.batch_size, settings.bptt, rng)
        state = module.zero_state(len(lanes))
        started, losses = time.perf_counter(), []
        with tqdm(
            iterate_batches(inputs, targets, lanes, settings.bptt),
            total=count_batches(lanes, settings.bptt),
            desc=f"epoch {epoch}/{settings.epochs}",
            unit="batch",
            disable=not settings.progress,
            leave=False,
        ) as bar:
            for batch in bar:
                loss, state = _batch_loss(module, batch, state)
                losses.append(optimisation.update(loss))
                result.event_steps += batch.fed_steps
                bar.set_postfix(loss=f"{np.mean(losses):.4f}")
                if best.out_of_budget(result):
                    break
        if best.end_epoch(result, epoch, started, losses, validate):
            break
    best.restore_best()
    module.eval()  # what is returned is the online model: dropout off
    result.weights = export_weights(module)
    result.report = evaluate(module, dataset, alpha, settings.eval_batch_size, baselines)
    return result


class _BestEpoch:
    """Early stopping, as both trainers do it: keeps the weights of the epoch with the lowest watched loss, records
    each epoch in the result's history and says when training stops (deadline, step budget or patience spent)."""

    def __init__(self, module: torch.nn.Module, settings: TrainConfig) -> None:
        self.module, self.patience = module, settings.patience
        self.loss, self.state, self.since = math.inf, copy.deepcopy(module.state_dict()), 0
        self.deadline = time.monotonic() + 60.0 * settings.max_minutes if settings.max_minutes else math.inf
        self.step_budget = settings.max_event_steps or math.inf

    def out_of_budget(self, result: Any) -> bool:
        """True once the deadline has passed or the result's event steps reached the budget: end the epoch now."""
        return time.monotonic() > self.deadline or result.event_steps >= self.step_budget

    def end_epoch(self, result: Any, epoch: int, started: float, losses: list[float],
                  validate: Callable[[], float] | None) -> bool:  # fmt: skip
        """Record the epoch begun at ``started`` (its time, mean training loss and the watched loss: ``validate()``,
        or the training loss without validation steps); True (with ``result.stopped`` set) when training stops."""
        result.train_seconds += time.perf_counter() - started
        train_loss = float(np.mean(losses)) if losses else math.nan
        watched = train_loss if validate is None else validate()
        result.history.append({"epoch": epoch, "train_nll": train_loss, "validation_nll": watched})
        if watched < self.loss:
            self.loss, self.state, self.since = watched, copy.deepcopy(self.module.state_dict()), 0
            result.best_epoch = epoch
        else:
            self.since += 1
        budget_spent = result.event_steps >= self.step_budget
        stop = _stop_reason(self.deadline, budget_spent, self.since >= self.patience)
        if stop:
            result.stopped = stop
        return stop is not None

    def restore_best(self) -> None:
        """Load the best epoch's weights back into the module."""
        self.module.load_state_dict(self.state)


def _stop_reason(deadline: float, budget_spent: bool, patience_spent: bool) -> str | None:
    if time.monotonic() > deadline:
        return "max_minutes"
    if budget_spent:
        return "max_event_steps"
    return "early_stopping" if patience_spent else None
