"""Issue 9: plain GRU vs GRU + attention (online) vs bidirectional GRU (offline only), from one command.

Same seed and the same training budget (event-steps) for every model. Measured per model:

* **fleet**: trained on a clean seeded synthetic fleet, scored on another seeded fleet with two injected
  anomalies per stream (spikes, level shifts, drifts, frozen sensors, noise bursts). The causal models stream it
  through the online ``Detector`` (all streams' i-th events in one batch); the bidirectional one is rescored
  offline by ``rnncore.training.bidirectional.score_records`` (same calibration). Precision is the share of flags
  inside an anomaly window (+10 events grace), recall the share of injected anomalies with at least one flag
  (``stream.demo.evaluation``), F1 their harmonic mean: at the service's fixed threshold 0.99, and at the
  best-F1 threshold of each model (the same search for all, an upper bound that removes threshold luck).
NAB is no longer measured here: ``rnnwatch bench nab`` scores the product path, not a pipeline a model can be
swapped into (the NAB columns in BENCHMARKS.md are history, issue 9).

* **events/s**: the Detector over the test fleet (batches of one event per stream), and the kernel alone at
  B=4096 over 100k streams; **bytes per stream**: the state table row (kernel + calibration columns).

    flock /tmp/rnnwatch-bench.lock taskset -c 1 .venv/bin/python bench/attention.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from rnncore import kernels
from rnncore.detector import Detector
from rnncore.kernels.layout import allocate_columns
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.training.bidirectional import score_records, train_bidirectional
from rnncore.training.dataset import build_dataset
from rnncore.training.trainer import TrainConfig, train
from stream.data.synthetic import SyntheticFleet, generate_fleet
from stream.demo.evaluation import StreamFlags, evaluate

FIXED_THRESHOLD = 0.99


@dataclass(frozen=True)
class Quality:
    """Flag precision, anomaly recall and their F1 at one threshold."""

    threshold: float
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if not (p > 0 and r > 0) else 2 * p * r / (p + r)


@dataclass(frozen=True)
class Row:
    """One model's measurements (kernel rate and bytes only for the online, causal models)."""

    fixed: Quality
    best: Quality
    score_rate: float
    train_seconds: float
    steps: int
    kernel_rate: float | None = None
    row_bytes: int | None = None


def variants(hidden: int, window: int) -> dict[str, ModelConfig]:
    """The three models of the comparison (GRU, one layer, same size)."""
    plain = ModelConfig(cell="gru", hidden_size=hidden)
    return {
        "plain GRU": plain,
        f"GRU + attention K={window}": replace(plain, attention_window=window),
        "bidirectional GRU (offline)": replace(plain, direction="bidirectional"),
    }


def fit(records: Sequence[object], config: ModelConfig, settings: TrainConfig, **dataset_options: object):
    """Train one model on ``records`` with ``settings``; returns (weights, training seconds, event-steps)."""
    dataset = build_dataset(records, config, **dataset_options)  # type: ignore[arg-type]
    trainer = train_bidirectional if config.bidirectional else train
    result = trainer(dataset, config, settings)
    return result.weights, result.train_seconds, result.event_steps


def fleet_scores(weights: ModelWeights, fleet: SyntheticFleet) -> tuple[np.ndarray, float]:
    """Scores [S, T] of every event of the fleet and the scoring events/s."""
    S, T = len(fleet.streams), len(fleet.streams[0].times)
    if weights.config.bidirectional:
        records = list(fleet.records())
        score_records(weights, records[:S])  # warm-up (first torch calls), not timed
        started = time.perf_counter()
        result = score_records(weights, records)
        seconds = time.perf_counter() - started
        index = {(s.key, float(t)): (i, j) for i, s in enumerate(fleet.streams) for j, t in enumerate(s.times)}
        scores = np.zeros((S, T))
        for record, score in zip(records, result.scores, strict=True):
            scores[index[(record.key, record.time)]] = score
        return scores, S * T / seconds
    detector = Detector(weights, max_streams=S)
    keys = [s.key for s in fleet.streams]
    times = np.stack([s.times for s in fleet.streams])
    values = np.stack([s.values for s in fleet.streams]).astype(np.float32)
    scores = np.zeros((S, T))
    Detector(weights, max_streams=S).step(keys, times[:, 0], values[:, 0])  # warm-up (Numba loads), not timed
    started = time.perf_counter()
    for j in range(T):
        scores[:, j] = detector.step(keys, times[:, j], values[:, j]).scores
    return scores, S * T / (time.perf_counter() - started)


def quality(fleet: SyntheticFleet, scores: np.ndarray, threshold: float) -> Quality:
    """Flag precision / anomaly recall of ``scores >= threshold`` against the injected anomalies."""
    flags = [
        StreamFlags(stream, np.arange(len(stream.times)), scores[i] >= threshold)
        for i, stream in enumerate(fleet.streams)
    ]
    result = evaluate(flags)
    return Quality(threshold, result.flag_precision, result.anomaly_recall)


def best_quality(fleet: SyntheticFleet, scores: np.ndarray) -> Quality:
    """The best-F1 threshold among the score quantiles from 50% to 99.999% (the same search for every model)."""
    candidates = np.unique(np.quantile(scores, 1.0 - np.geomspace(0.5, 1e-5, 160)))
    best = Quality(1.0, 0.0, 0.0)
    for threshold in candidates:
        q = quality(fleet, scores, float(threshold))
        if q.f1 > best.f1:
            best = q
    return best


def kernel_events_per_s(weights: ModelWeights, streams: int = 100_000, batch: int = 4096, repeats: int = 7) -> float:
    """Median events/s of ``kernels.advance`` alone, random rows of a ``streams``-row table."""
    rng = np.random.default_rng(0)
    model, columns = kernels.pack(weights), allocate_columns(weights.config, streams)
    F = weights.config.n_features
    out = kernels.StepOutput.empty(batch, F)
    times = np.arange(batch, dtype=np.float64)
    values = rng.normal(size=(batch, F)).astype(np.float32)
    rates = []
    for r in range(repeats + 1):
        rows = rng.integers(0, streams, batch)
        started = time.perf_counter()
        kernels.advance(model, columns, rows, times + r * batch, values, out)
        if r:  # the first call warms caches (and compiles)
            rates.append(batch / (time.perf_counter() - started))
    return float(np.median(rates))


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Row]:
    """Train and measure the three models on the fleets of one seed."""
    configs = variants(args.hidden_size, args.window)
    train_fleet = generate_fleet(args.train_streams, args.events, anomalies_per_stream=0, seed=seed)
    test_fleet = generate_fleet(args.test_streams, args.events, anomalies_per_stream=2, seed=seed + 1000)
    settings = TrainConfig(
        bptt=64, batch_size=32, segment_length=512, warmup=64, epochs=1000, patience=1000,
        max_event_steps=args.event_steps, seed=seed, threads=1, progress=False,
    )  # fmt: skip
    rows: dict[str, Row] = {}
    for name, config in configs.items():
        weights, train_seconds, steps = fit(list(train_fleet.records()), config, settings)
        scores, rate = fleet_scores(weights, test_fleet)
        online = not config.bidirectional
        rows[name] = Row(
            fixed=quality(test_fleet, scores, FIXED_THRESHOLD),
            best=best_quality(test_fleet, scores),
            score_rate=rate,
            train_seconds=train_seconds,
            steps=steps,
            kernel_rate=kernel_events_per_s(weights) if online else None,
            row_bytes=Detector(weights, max_streams=1).table.row_nbytes if online else None,
        )
        print(f"seed {seed} {name}: trained {steps:,} event-steps in {train_seconds:.0f} s", flush=True)
    return rows


def _difference(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of per-seed differences."""
    array = np.asarray(values, dtype=np.float64)
    spread = float(array.std(ddof=1) / np.sqrt(array.size)) if array.size > 1 else float("nan")
    return float(array.mean()), spread


def main() -> None:
    """Parse flags, run every seed, print the tables, the attention-vs-plain differences and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-streams", type=int, default=32, help="clean training fleet")
    parser.add_argument("--test-streams", type=int, default=64, help="test fleet, two injected anomalies each")
    parser.add_argument("--events", type=int, default=2000, help="events per stream")
    parser.add_argument("--hidden-size", type=int, default=32)
    parser.add_argument("--window", type=int, default=16, help="attention window K")
    parser.add_argument("--event-steps", type=int, default=800_000, help="training budget per fleet model")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (fleets, initialisation)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {seed: run_seed(args, seed) for seed in seeds}
    print(
        f"\nfleet: train {args.train_streams} clean streams, test {args.test_streams} streams x {args.events} events "
        f"(2 anomalies each); budget {args.event_steps:,} event-steps per model"
    )
    for seed, rows in runs.items():
        print_table(rows, f"seed {seed}")
    names = list(runs[seeds[0]])
    plain_name, attention_name, bidir_name = names

    def mean(pick: Callable[[dict[str, Row]], float]) -> float:
        return float(np.mean([pick(rows) for rows in runs.values()]))

    measures: dict[str, Callable[[str], Callable[[dict[str, Row]], float]]] = {
        "fleet best F1": lambda name: lambda rows: rows[name].best.f1,
        "fleet F1 at 0.99": lambda name: lambda rows: rows[name].fixed.f1,
    }
    print(f"\nmean over seeds {args.seeds}; attention - plain: mean +- standard error of the per-seed difference")
    print("| measure | plain GRU | GRU + attention | bidirectional (offline) | attention - plain |")
    print("|---|---|---|---|---|")
    differences: dict[str, tuple[float, float]] = {}
    for label, measure in measures.items():
        per_seed = [measure(attention_name)(r) - measure(plain_name)(r) for r in runs.values()]
        differences[label] = _difference(per_seed)
        bidir = f"{mean(measure(bidir_name)):.3f}"
        d, se = differences[label]
        print(f"| {label} | {mean(measure(plain_name)):.3f} | {mean(measure(attention_name)):.3f} | {bidir} "
              f"| {d:+.3f} +- {se:.3f} |")  # fmt: skip
    # "a clear margin": at least +0.02 fleet F1, and more than twice its standard error
    clear = {"fleet best F1": 0.02}
    wins = [label for label, margin in clear.items() if differences[label][0] > max(margin, 2 * differences[label][1])]
    verdict = "attention helps: " + ", ".join(wins) if wins else "attention does not help by a clear margin"
    print(f"verdict: {verdict}")
    rate = {name: float(np.median([rows[name].score_rate for rows in runs.values()])) for name in names}
    kernel = {name: float(np.median([rows[name].kernel_rate or 0.0 for rows in runs.values()])) for name in names}
    fields = {
        "plain_f1": mean(measures["fleet best F1"](plain_name)),
        "attention_f1": mean(measures["fleet best F1"](attention_name)),
        "bidirectional_f1": mean(measures["fleet best F1"](bidir_name)),
        "plain_f1_fixed": mean(measures["fleet F1 at 0.99"](plain_name)),
        "attention_f1_fixed": mean(measures["fleet F1 at 0.99"](attention_name)),
        "bidirectional_f1_fixed": mean(measures["fleet F1 at 0.99"](bidir_name)),
        "plain_events_per_s": rate[plain_name],
        "attention_events_per_s": rate[attention_name],
        "bidirectional_events_per_s": rate[bidir_name],
        "plain_kernel_events_per_s": kernel[plain_name],
        "attention_kernel_events_per_s": kernel[attention_name],
        "plain_bytes": runs[seeds[0]][plain_name].row_bytes,
        "attention_bytes": runs[seeds[0]][attention_name].row_bytes,
        "attention_wins": int(bool(wins)),
        "seconds": time.perf_counter() - started,
    }
    print("RESULT " + " ".join(f"{k}={_fmt(v)}" for k, v in fields.items()))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def print_table(rows: dict[str, Row], title: str) -> None:
    """One seed's comparison table, Markdown, as BENCHMARKS.md shows it."""
    print(f"\n{title}")
    print(
        "| model | fleet P / R / F1 at 0.99 | fleet best F1 (P / R, threshold) "
        "| Detector events/s (fleet) | kernel events/s (B=4096, 100k streams) | bytes per stream |"
    )
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        fixed, best = row.fixed, row.best
        kernel = f"{row.kernel_rate:,.0f}" if row.kernel_rate is not None else "offline"
        size = f"{row.row_bytes:,}" if row.row_bytes is not None else "offline (whole log in memory)"
        print(
            f"| {name} | {fixed.precision:.3f} / {fixed.recall:.3f} / {fixed.f1:.3f} "
            f"| {best.f1:.3f} ({best.precision:.3f} / {best.recall:.3f}, {best.threshold:.6f}) "
            f"| {row.score_rate:,.0f} | {kernel} | {size} |"
        )


if __name__ == "__main__":
    main()
