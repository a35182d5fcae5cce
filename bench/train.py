"""Training benchmark: event-steps/s of BPTT training and validation quality vs persistence and EWMA.

Trains the model (default GRU, H=64, 2 layers) on a seeded synthetic fleet of all four families for a fixed
budget of training event-steps (default 5M; throughput is also given as seconds per 1M) at each torch thread
count, and prints validation NLL / MAE of the model next to the persistence and EWMA baselines scored on
the same steps, overall and per family. By default the fleet has no injected anomalies, so the scores
measure forecasting of normal behaviour (``--anomalies 2`` puts anomalies in the validation range too).
The machine is shared and noisy: pin with taskset and compare rows of the same run.
``--attention-window K`` trains the attention head, ``--bidirectional`` the offline non-causal interpolator
(its NLL is not comparable with a causal model's as a forecaster: it sees both sides of each step).

    taskset -c 0,1 .venv/bin/python bench/train.py --threads 1,2
"""

from __future__ import annotations

import argparse
import time

import torch

from rnncore.model.attention import ring_bytes_per_stream
from rnncore.model.config import CELL_TYPES, ModelConfig
from rnncore.training.baselines import ForecastScore, ewma_forecast, persistence_forecast, score_forecasts
from rnncore.training.bidirectional import predict_bidirectional, stream_backward_inputs, train_bidirectional
from rnncore.training.dataset import Dataset, build_dataset
from rnncore.training.trainer import TrainConfig, TrainResult, predict, train
from stream.commands.flag_values import same_named
from stream.data.synthetic import generate_fleet


def by_family(result: TrainResult, dataset: Dataset) -> None:
    """Validation NLL / MAE per synthetic family (stream keys start with the family name)."""
    scores: dict[str, list[ForecastScore]] = {}
    if result.module.config.bidirectional:
        forward = [s.seq.inputs for s in dataset.streams]
        backward = stream_backward_inputs(dataset, result.module.config)
        forecasts = predict_bidirectional(result.module, forward, backward)
    else:
        forecasts = predict(result.module, dataset)
    min_scale, alpha = result.module.config.min_scale, result.report.ewma_alpha
    for stream, forecast in zip(dataset.streams, forecasts, strict=True):
        rows = scores.setdefault(stream.key.split("-")[0], [ForecastScore(), ForecastScore(), ForecastScore()])
        steps, seq = stream.validation_steps, stream.seq
        rows[0].add(score_forecasts(seq, forecast[:, 0], forecast[:, 1], steps, min_scale))
        rows[1].add(score_forecasts(seq, *persistence_forecast(seq), steps, min_scale))
        rows[2].add(score_forecasts(seq, *ewma_forecast(seq, alpha), steps, min_scale))
    for family, (m, p, e) in sorted(scores.items()):
        print(
            f"  {family:<12} NLL {m.nll:8.4f} {p.nll:8.4f} {e.nll:8.4f}   MAE {m.mae:8.4f} {p.mae:8.4f} {e.mae:8.4f}"
            "   (model, persistence, ewma)"
        )


def main() -> None:
    """Parse flags, run one training per thread count, print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--events", type=int, default=4000, help="events per stream")
    parser.add_argument(
        "--anomalies", type=int, default=0, help="injected anomalies per stream (they are in the validation range too)"
    )
    parser.add_argument("--event-steps", type=int, default=5_000_000, help="training budget (throughput is per 1M)")
    parser.add_argument("--cell", choices=CELL_TYPES, default="gru")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--norm-window", type=int, default=ModelConfig().norm_window)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attention-window", type=int, default=0, help="attention over the last K states (0 = off)")
    parser.add_argument("--bidirectional", action="store_true", help="offline non-causal interpolating model")
    args = parser.parse_args()

    started = time.perf_counter()
    fleet = generate_fleet(args.streams, args.events, anomalies_per_stream=args.anomalies, seed=args.seed)
    config = ModelConfig(
        num_layers=args.layers,
        direction="bidirectional" if args.bidirectional else "forward",
        **same_named(args, "cell", "hidden_size", "norm_window", "attention_window"),
    )
    dataset = build_dataset(fleet.records(), config)
    prep = time.perf_counter() - started
    print(
        f"fleet: {args.streams} streams x {args.events} events, {args.anomalies} anomalies each, "
        f"{dataset.train_steps} train / "
        f"{dataset.validation_steps} validation steps; prepared in {prep:.1f} s"
    )
    print(
        f"model: {args.cell} H={args.hidden_size} L={args.layers} attention K={args.attention_window} "
        f"{config.direction} (attention ring {ring_bytes_per_stream(config)} B/stream), "
        f"budget {args.event_steps:,} event-steps"
    )
    header = f"{'threads':>7} {'steps/s':>10} {'train s':>8} {'wall s':>7} {'epochs':>6}"
    header += f" {'NLL model':>10} {'persist':>8} {'ewma':>8} {'MAE model':>10} {'persist':>8} {'ewma':>8}"
    print(header)
    result_fields: dict[str, str] = {}
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        settings = TrainConfig(
            learning_rate=args.lr,
            epochs=1000,
            patience=1000,
            max_event_steps=args.event_steps,
            threads=threads,
            progress=False,
            **same_named(args, "bptt", "batch_size", "seed"),
        )
        t0 = time.perf_counter()
        result = (train_bidirectional if config.bidirectional else train)(dataset, config, settings)
        wall = time.perf_counter() - t0
        r = result.report
        print(
            f"{threads:>7} {result.throughput:>10,.0f} {result.train_seconds:>8.1f} {wall:>7.1f} "
            f"{len(result.history):>6} {r.model.nll:>10.4f} {r.persistence.nll:>8.4f} {r.ewma.nll:>8.4f} "
            f"{r.model.mae:>10.4f} {r.persistence.mae:>8.4f} {r.ewma.mae:>8.4f}"
        )
        by_family(result, dataset)
        result_fields[f"steps_per_s_t{threads}"] = f"{result.throughput:.0f}"
        result_fields[f"seconds_per_1M_t{threads}"] = f"{1e6 / max(result.throughput, 1e-9):.1f}"
        result_fields[f"wall_s_t{threads}"] = f"{wall:.1f}"
        result_fields[f"nll_t{threads}"] = f"{r.model.nll:.4f}"
        result_fields[f"mae_t{threads}"] = f"{r.model.mae:.4f}"
        result_fields["nll_persistence"] = f"{r.persistence.nll:.4f}"
        result_fields["nll_ewma"] = f"{r.ewma.nll:.4f}"
        result_fields["mae_persistence"] = f"{r.persistence.mae:.4f}"
        result_fields["mae_ewma"] = f"{r.ewma.mae:.4f}"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result_fields.items()))


if __name__ == "__main__":
    main()
