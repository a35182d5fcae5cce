"""Events/s of the seasonal ScoringPipeline against the bare Detector it wraps, same model, same events.

Streams of 5-minute data with a daily cycle; each batch holds ``--batch`` events of random streams (in each
stream's time order). Both paths are warmed up (Numba loaded) on the first batches, then timed over
``--repeats`` passes of fresh events; medians reported, with the pipeline's bytes of state per stream.

    flock /tmp/rnnwatch-bench.lock taskset -c 1 .venv/bin/python bench/pipeline.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

from rnncore.detector import Detector
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.stages.pipeline import PipelineSettings, ScoringPipeline


def _batches(streams: int, batch: int, count: int, seed: int) -> list[tuple[list[str], np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    names = [f"sensor-{i}" for i in range(streams)]
    seen = np.zeros(streams, dtype=np.int64)
    out = []
    for _ in range(count):
        ids = rng.integers(0, streams, batch)
        order = np.zeros(batch, dtype=np.int64)
        for j, s in enumerate(ids.tolist()):  # each stream's events in time order
            order[j] = seen[s]
            seen[s] += 1
        times = 1.7e9 + 300.0 * order + ids
        values = np.sin(2 * np.pi * times / 86400) + 0.1 * rng.standard_normal(batch)
        out.append(([names[s] for s in ids.tolist()], times, values))
    return out


def _rate(scorer: Any, batches: list[tuple[list[str], np.ndarray, np.ndarray]]) -> float:
    start = time.perf_counter()
    for keys, times, values in batches:
        scorer.step(keys, times, values)
    return sum(len(b[0]) for b in batches) / (time.perf_counter() - start)


def main() -> None:
    """Print events/s of both paths (median of the repeats) and a RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--batches", type=int, default=150, help="batches per timed pass")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    weights = ModelWeights.random(ModelConfig(cell="gru", hidden_size=16), seed=0)
    settings = PipelineSettings()
    detector = Detector(weights, max_streams=args.streams, scoring=settings.detector_scoring)
    pipeline = ScoringPipeline(weights, settings, max_streams=args.streams)
    warm = _batches(args.streams, args.batch, 5, seed=0)
    _rate(detector, warm)
    _rate(pipeline, warm)
    rates: dict[str, list[float]] = {"detector": [], "pipeline": []}
    for r in range(args.repeats):  # alternate the two so drift on the shared machine hits both alike
        timed = _batches(args.streams, args.batch, args.batches, seed=r + 1)
        rates["detector"].append(_rate(detector, timed))
        rates["pipeline"].append(_rate(pipeline, timed))
    med = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name:<9} events/s median {med[name]:>12,.0f}  runs {', '.join(f'{v:,.0f}' for v in values)}")
    print(
        f"pipeline state: {settings.bytes_per_stream()} bytes per stream beside the Detector's "
        f"{detector.table.row_nbytes} (row {pipeline.table.row_nbytes})"
    )
    print(
        f"RESULT detector_events_per_s={med['detector']:.0f} pipeline_events_per_s={med['pipeline']:.0f} "
        f"ratio={med['pipeline'] / med['detector']:.2f} pipeline_bytes_per_stream={settings.bytes_per_stream()}"
    )


if __name__ == "__main__":
    main()
