"""Step-kernel benchmark: events/s of ``rnncore.kernels.advance`` against PyTorch in the same process.

The baseline is what one would write in PyTorch: a state table tensor, ``index_select`` the batch's rows,
GRUCell/LSTMCell, ``index_copy_`` back, the Linear head; ``torch.set_num_threads(1)``, inference mode.
Rows are random over N streams (duplicates included: the kernel keeps per-stream order, torch does not).
One thread everywhere; run pinned: ``taskset -c 0 .venv/bin/python bench/kernels.py [--quick]``.
Times are this thread's CPU time (``time.thread_time``), medians of several repeats: the machine is shared,
and CPU time is far steadier than wall time when other processes compete for the cores.
Ends with one ``RESULT`` line (GRU I=1 H=64 and LSTM I=8 H=64 at B=4096, N=1M; B=1 call time).
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnncore import kernels  # noqa: E402
from rnncore.config import CellType, ModelConfig  # noqa: E402
from rnncore.kernels.layout import allocate_columns  # noqa: E402
from rnncore.model import ModelWeights  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One benchmark configuration."""

    cell: CellType
    features: int
    hidden: int
    streams: int
    batch: int

    @property
    def label(self) -> str:
        return f"{self.cell} I={self.features} H={self.hidden} N={self.streams:,} B={self.batch}"


def make_batches(case: Case, count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``count`` batches of random rows over N, increasing times and float32 values."""
    rng = np.random.default_rng(seed)
    batches = []
    for k in range(count):
        rows = rng.integers(0, case.streams, case.batch).astype(np.int64)
        times = k + np.sort(rng.uniform(0, 1, case.batch))
        values = rng.normal(size=(case.batch, case.features)).astype(np.float32)
        batches.append((rows, times, values))
    return batches


def time_runs(step: Callable[[int], None], n_batches: int, repeats: int) -> list[float]:
    """Thread CPU seconds per pass over ``n_batches`` batches, for each repeat (after one warm-up pass)."""
    for k in range(n_batches):
        step(k)
    samples = []
    for _ in range(repeats):
        start = time.thread_time()
        for k in range(n_batches):
            step(k)
        samples.append(time.thread_time() - start)
    return samples


def numba_runner(case: Case, batches) -> tuple[Callable[[int], None], int]:
    """A step function over pre-made batches for the Numba kernel, and the state bytes per stream."""
    config = ModelConfig(cell=case.cell, n_features=case.features, hidden_size=case.hidden)
    model = kernels.pack(ModelWeights.random(config, seed=1))
    columns = allocate_columns(config, case.streams)
    for column in columns.values():
        column[...] = 0  # commit the pages up front, as a long-running table would have them
    out = kernels.StepOutput.empty(case.batch, case.features)

    def step(k: int) -> None:
        rows, times, values = batches[k]
        kernels.advance(model, columns, rows, times, values, out)

    return step, kernels.bytes_per_row(config)


def torch_runner(case: Case, batches) -> Callable[[int], None]:
    """The same work in PyTorch: gather rows, cell, scatter back, head."""
    import torch

    torch.set_num_threads(1)
    cell_type = torch.nn.LSTMCell if case.cell == "lstm" else torch.nn.GRUCell
    cell = cell_type(case.features, case.hidden)
    head = torch.nn.Linear(case.hidden, 2 * case.features)
    h_table = torch.zeros(case.streams, case.hidden)
    c_table = torch.zeros(case.streams, case.hidden) if case.cell == "lstm" else None
    tensors = [(torch.from_numpy(rows), torch.from_numpy(values)) for rows, _, values in batches]

    def step(k: int) -> None:
        idx, x = tensors[k]
        with torch.inference_mode():
            h = h_table.index_select(0, idx)
            if c_table is not None:
                c = c_table.index_select(0, idx)
                h, c = cell(x, (h, c))
                c_table.index_copy_(0, idx, c)
            else:
                h = cell(x, h)
            h_table.index_copy_(0, idx, h)
            o = head(h)
            torch.nn.functional.softplus(o[:, case.features :])

    return step


def measure(case: Case, n_events: int, repeats: int, with_torch: bool) -> dict[str, float]:
    """Median events/s (and us per call) of the kernel and, optionally, the torch baseline."""
    n_batches = max(1, n_events // case.batch)
    batches = make_batches(case, n_batches)
    step, row_bytes = numba_runner(case, batches)
    result = {"bytes_per_stream": float(row_bytes)}
    samples = time_runs(step, n_batches, repeats)
    seconds = statistics.median(samples)
    result["numba_eps"] = n_batches * case.batch / seconds
    result["numba_us_per_call"] = seconds / n_batches * 1e6
    if with_torch:
        torch_batches = batches if case.batch > 1 else batches[: max(1, n_batches // 20)]
        torch_samples = time_runs(torch_runner(case, torch_batches), len(torch_batches), repeats)
        torch_seconds = statistics.median(torch_samples)
        result["torch_eps"] = len(torch_batches) * case.batch / torch_seconds
        result["torch_us_per_call"] = torch_seconds / len(torch_batches) * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and repeats (smoke run)")
    args = parser.parse_args()
    events, repeats = (40_000, 3) if args.quick else (200_000, 5)
    cases = [
        Case("gru", 1, 64, 1_000_000, 4096),
        Case("lstm", 8, 64, 1_000_000, 4096),
        Case("gru", 1, 64, 10_000, 4096),
        Case("lstm", 8, 64, 10_000, 4096),
        Case("rnn", 1, 64, 1_000_000, 4096),
        Case("gru", 1, 64, 1_000_000, 1),
        Case("gru", 1, 64, 10_000, 1),
        Case("lstm", 8, 64, 1_000_000, 1),
    ]
    if args.quick:
        cases = [case for case in cases if case.streams == 1_000_000 and case.cell != "rnn"]
    header = f"{'case':<36} {'numba ev/s':>12} {'torch ev/s':>12} {'speedup':>8} {'numba us/call':>14} {'B/stream':>9}"
    print(header)
    print("-" * len(header))
    results: dict[Case, dict[str, float]] = {}
    for case in cases:
        n = events if case.batch > 1 else max(2_000, events // 20)
        r = measure(case, n, repeats, with_torch=True)
        results[case] = r
        speedup = r["numba_eps"] / r["torch_eps"]
        print(
            f"{case.label:<36} {r['numba_eps']:>12,.0f} {r['torch_eps']:>12,.0f} {speedup:>7.2f}x "
            f"{r['numba_us_per_call']:>14.2f} {int(r['bytes_per_stream']):>9}",
            flush=True,
        )
    gru = results[cases[0]]
    lstm = results[cases[1]]
    b1 = results[Case("gru", 1, 64, 1_000_000, 1)]
    print(
        f"RESULT gru_vs_torch={gru['numba_eps'] / gru['torch_eps']:.2f} "
        f"lstm_vs_torch={lstm['numba_eps'] / lstm['torch_eps']:.2f} "
        f"gru_events_per_s={gru['numba_eps']:.0f} b1_us={b1['numba_us_per_call']:.2f} "
        f"bytes_per_stream={int(gru['bytes_per_stream'])}"
    )


if __name__ == "__main__":
    main()
