"""Step-kernel benchmark: events/s of ``rnncore.kernels.advance`` against PyTorch in the same process.

Two PyTorch baselines, both what one would write in PyTorch (``torch.set_num_threads(1)``, inference mode,
state tables of the same size): "cell" is ``index_select`` the batch's rows, GRUCell/LSTMCell/RNNCell,
``index_copy_`` back, the Linear head and the softplus; "same work" adds what the kernel also does per
event, vectorised: the finiteness check, the surprise (NLL) from the stored forecast, the running mean and
variance update, the normalised and clipped input, the forecast in original units, and the per-stream
mean/variance/forecast, count and time written back (one stats table, so one gather and one scatter).
The speedups and the ``RESULT`` line compare against "same work". Neither torch baseline keeps the
per-stream order of duplicate rows inside a batch (the kernel does).
Rows are random over N streams (duplicates included). One thread everywhere; run pinned:
``taskset -c 0 .venv/bin/python bench/kernels.py [--quick]``. Times are this thread's CPU time
(``time.thread_time``), medians of several repeats: the machine is shared, and CPU time is far steadier than
wall time when other processes compete for the cores. PyTorch's GRUCell/LSTMCell runs about 2x slower in
some freshly built instances than in others (the same weights cloned into a new module can flip it; the
matrix products are not what changes), so each batched torch baseline is the fastest of ``PROBES`` fresh
instances, which favours torch.
The machine's own limit is measured in the same run (``peak_probe``): the best single-thread FP32 rate of
the project's register-blocked product (``gate_product``) over tile shapes, and of a 2048^3 ``np.matmul``
(the BLAS numpy ships); each kernel's events/s x FLOP per event (gates and head, ``flops_per_event``) is
printed as a fraction of that peak, with ``lscpu``'s model line.
Ends with one ``RESULT`` line (GRU I=1 H=64 and LSTM I=8 H=64 at B=4096, N=1M; B=1 call time; fractions of
the peak).
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_model  # noqa: E402  (bench/, first on sys.path)

from rnncore import kernels  # noqa: E402
from rnncore.kernels._gemm import ROWS, gate_product  # noqa: E402
from rnncore.kernels._numba import jit  # noqa: E402
from rnncore.kernels.layout import allocate_columns  # noqa: E402
from rnncore.model.config import CellType, ModelConfig  # noqa: E402
from rnncore.model.weights import ModelWeights  # noqa: E402


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


PROBES = 5  # fresh torch instances tried per batched baseline; the fastest is measured


def torch_runner(case: Case, batches, same_work: bool) -> Callable[[int], None]:
    """The torch baseline as a step function over pre-made batches (see the module docstring)."""
    import torch

    torch.set_num_threads(1)
    F, H, N = case.features, case.hidden, case.streams
    config = ModelConfig(cell=case.cell, n_features=F, hidden_size=H)
    cell_type = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}[case.cell]
    cell = cell_type(F, H)
    head = torch.nn.Linear(H, 2 * F)
    h_table = torch.zeros(N, H)
    c_table = torch.zeros(N, H) if case.cell == "lstm" else None
    stats = torch.zeros(N, 4, F)  # running mean, running variance, forecast mu, forecast sigma
    count = torch.zeros(N, dtype=torch.int64)
    last_time = torch.zeros(N, dtype=torch.float64)
    tensors = [
        (torch.from_numpy(rows), torch.from_numpy(times), torch.from_numpy(values)) for rows, times, values in batches
    ]
    inv_window, eps, clip = 1.0 / config.norm_window, config.norm_eps, config.input_clip
    half_log_2pi = 0.5 * math.log(2.0 * math.pi)

    def recurrent(idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = h_table.index_select(0, idx)
        if c_table is not None:
            c = c_table.index_select(0, idx)
            h, c = cell(x, (h, c))
            c_table.index_copy_(0, idx, c)
        else:
            h = cell(x, h)
        h_table.index_copy_(0, idx, h)
        return h

    def step_cell(k: int) -> None:
        idx, _, x = tensors[k]
        with torch.inference_mode():
            o = head(recurrent(idx, x))
            torch.nn.functional.softplus(o[:, F:])

    def step_same_work(k: int) -> None:
        idx, t, v = tensors[k]
        with torch.inference_mode():
            if not (bool(torch.isfinite(v).all()) and bool(torch.isfinite(t).all())):
                raise ValueError("the benchmark's events are finite")
            m, var, mu, sigma = stats.index_select(0, idx).unbind(1)
            seen = count.index_select(0, idx)
            z = ((v - m) / torch.sqrt(var + eps) - mu) / sigma
            nll = (0.5 * z * z + torch.log(sigma)).mean(1) + half_log_2pi
            nll = torch.where(seen > 0, nll, torch.nan)
            alpha = torch.clamp_min(1.0 / (seen + 1), inv_window).unsqueeze(1)
            delta = v - m
            m = m + alpha * delta
            var = (1.0 - alpha) * (var + alpha * delta * delta)
            sd = torch.sqrt(var + eps)
            o = head(recurrent(idx, ((v - m) / sd).clamp(-clip, clip)))
            mu, sigma = o[:, :F], torch.nn.functional.softplus(o[:, F:]) + config.min_scale
            mean, scale = m + mu * sd, sigma * sd  # the outputs the kernel fills
            stats.index_copy_(0, idx, torch.stack((m, var, mu, sigma), 1))
            count.index_copy_(0, idx, seen + 1)
            last_time.index_copy_(0, idx, t)
            del nll, mean, scale

    return step_same_work if same_work else step_cell


def fastest_torch_runner(case: Case, batches, same_work: bool, probes: int) -> Callable[[int], None]:
    """The fastest of ``probes`` freshly built torch baselines, timed on a few of the batches."""
    best, best_seconds = None, math.inf
    for _ in range(probes):
        step = torch_runner(case, batches, same_work)
        seconds = min(time_runs(step, min(4, len(batches)), 2))
        if seconds < best_seconds:
            best, best_seconds = step, seconds
        del step
    assert best is not None
    return best


def flops_per_event(case: Case) -> int:
    """2 x the multiply-adds of one event (the cases are one layer): input and recurrent gates, forecast head."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[case.cell]
    recurrent = case.features * gates * case.hidden + case.hidden * gates * case.hidden
    return 2 * (recurrent + case.hidden * 2 * case.features)


@jit
def _repeat_gate_product(reps: int, n: int, P: np.ndarray, width: int, weights: np.ndarray, A1: np.ndarray,
                         A2: np.ndarray, K: int) -> float:  # fmt: skip
    """``reps`` tile products of n rows, K + K inputs, ``width`` columns; returns a checksum (keeps the work)."""
    for _ in range(reps):
        gate_product(n, P, 0, width, weights, 2 * K * width, A1, 0, K, A2, K * width, K, width)
    return float(P[0, 0])


def _aligned(n: int) -> np.ndarray:
    raw = np.zeros(n + 16, dtype=np.float32)
    skip = (-(raw.ctypes.data // 4)) % 16
    return raw[skip : skip + n]


def peak_probe(repeats: int) -> dict[str, float]:
    """Best single-thread FP32 FLOP/s this process reaches: the kernel's own tile product over a few shapes,
    and a big sgemm through numpy's BLAS. CPU time, medians of ``repeats``."""
    rng = np.random.default_rng(0)
    best_tile, best_shape = 0.0, ""
    for K, width in ((64, 192), (64, 256), (128, 256)):
        n = kernels.TILE
        padded = -(-n // ROWS) * ROWS  # gate_product also computes the rows up to the next block of ROWS
        weights = _aligned((2 * K + 1) * width)
        weights[:] = rng.standard_normal(weights.shape[0]).astype(np.float32) * 0.01
        A1 = rng.standard_normal((padded, K)).astype(np.float32)
        A2 = rng.standard_normal((padded, K)).astype(np.float32)
        P = np.zeros((padded, width), dtype=np.float32)
        reps = max(1, int(2e9 // (2 * n * width * 2 * K)))
        _repeat_gate_product(1, n, P, width, weights, A1, A2, K)  # compile
        samples = []
        for _ in range(repeats):
            started = time.thread_time()
            _repeat_gate_product(reps, n, P, width, weights, A1, A2, K)
            samples.append(time.thread_time() - started)
        rate = reps * 2 * n * width * 2 * K / statistics.median(samples)
        if rate > best_tile:
            best_tile, best_shape = rate, f"{n}x{2 * K}x{width}"
    a = rng.standard_normal((2048, 2048)).astype(np.float32)
    b = rng.standard_normal((2048, 2048)).astype(np.float32)
    np.matmul(a, b)
    samples = []
    for _ in range(max(1, repeats // 2)):
        started = time.thread_time()
        np.matmul(a, b)
        samples.append(time.thread_time() - started)
    sgemm = 2 * 2048**3 / statistics.median(samples)
    return {"tile_flops": best_tile, "tile_shape": best_shape, "sgemm_flops": sgemm, "peak": max(best_tile, sgemm)}


def measure(case: Case, n_events: int, repeats: int) -> dict[str, float]:
    """Median events/s (and us per call) of the kernel and both torch baselines (B=1: same work only)."""
    n_batches = max(1, n_events // case.batch)
    batches = make_batches(case, n_batches)
    step, row_bytes = numba_runner(case, batches)
    result = {"bytes_per_stream": float(row_bytes)}
    samples = time_runs(step, n_batches, repeats)
    seconds = statistics.median(samples)
    result["numba_eps"] = n_batches * case.batch / seconds
    result["numba_us_per_call"] = seconds / n_batches * 1e6
    del step
    torch_batches = batches if case.batch > 1 else batches[: max(1, n_batches // 20)]
    for name, same_work in (("torch_cell", False), ("torch", True)):
        if case.batch == 1 and not same_work:
            continue
        probes = PROBES if case.batch > 1 else 1
        runner = fastest_torch_runner(case, torch_batches, same_work, probes)
        torch_seconds = statistics.median(time_runs(runner, len(torch_batches), repeats))
        result[f"{name}_eps"] = len(torch_batches) * case.batch / torch_seconds
        del runner
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
    peak = peak_probe(repeats)
    print(f"cpu: {cpu_model()}")
    print(
        f"peak probe (1 thread): tile product {peak['tile_flops'] / 1e9:.0f} GFLOP/s ({peak['tile_shape']}), "
        f"np.matmul 2048^3 {peak['sgemm_flops'] / 1e9:.0f} GFLOP/s; peak = {peak['peak'] / 1e9:.0f} GFLOP/s"
    )
    header = (
        f"{'case':<36} {'numba ev/s':>12} {'torch ev/s':>12} {'speedup':>8} {'torch cell ev/s':>16} {'speedup':>8}"
        f" {'numba us/call':>14} {'B/stream':>9} {'of peak':>8}"
    )
    print(header)
    print("-" * len(header))
    results: dict[Case, dict[str, float]] = {}
    for case in cases:
        n = events if case.batch > 1 else max(2_000, events // 20)
        r = measure(case, n, repeats)
        results[case] = r
        cell_eps = (
            f"{r['torch_cell_eps']:>16,.0f} {r['numba_eps'] / r['torch_cell_eps']:>7.2f}x"
            if "torch_cell_eps" in r
            else f"{'':>16} {'':>8}"
        )
        print(
            f"{case.label:<36} {r['numba_eps']:>12,.0f} {r['torch_eps']:>12,.0f} "
            f"{r['numba_eps'] / r['torch_eps']:>7.2f}x "
            f"{cell_eps} {r['numba_us_per_call']:>14.2f} {int(r['bytes_per_stream']):>9} "
            f"{r['numba_eps'] * flops_per_event(case) / peak['peak']:>7.0%}",
            flush=True,
        )
    gru = results[cases[0]]
    lstm = results[cases[1]]
    b1 = results[Case("gru", 1, 64, 1_000_000, 1)]
    print(
        f"RESULT gru_vs_torch={gru['numba_eps'] / gru['torch_eps']:.2f} "
        f"lstm_vs_torch={lstm['numba_eps'] / lstm['torch_eps']:.2f} "
        f"gru_events_per_s={gru['numba_eps']:.0f} b1_us={b1['numba_us_per_call']:.2f} "
        f"bytes_per_stream={int(gru['bytes_per_stream'])} "
        f"gru_of_peak={gru['numba_eps'] * flops_per_event(cases[0]) / peak['peak']:.2f} "
        f"lstm_of_peak={lstm['numba_eps'] * flops_per_event(cases[1]) / peak['peak']:.2f} "
        f"peak_gflops={peak['peak'] / 1e9:.0f}"
    )


if __name__ == "__main__":
    main()
