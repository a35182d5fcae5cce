"""How far real streams come to the Detector's magnitude bound (``rnncore.detector.MagnitudeBound``).

For every event of every NAB file and fleet unit (train then test values), the largest ratio of the event to
the bound it is checked against: ``|v - mean| / (k * scale)`` once the stream has ``min_count`` events and a
variance above 0, else ``|v| / absolute``, with the running mean and variance the Detector holds before the
event. A ratio >= 1 is an event the bound rejects. The constants were chosen on TUNE (NAB files of even name
hash, fleet seeds 0-7); REPORT (the other NAB half, seeds 100-107) is only reported. Prints a table and one
``RESULT`` line.

    nice -n 10 .venv/bin/python bench/magnitude_margin.py --nab ../shared/datasets/nab
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable

import numpy as np

from rnncore.detector import Detector, MagnitudeBound
from rnncore.kernels.layout import COUNT, NORM
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.evaluation.fleet.generator import REPORT_SEEDS, TUNE_SEEDS, make_fleet
from stream.evaluation.nab_data import load_series
from stream.evaluation.runner import file_half


def _ratios(values: np.ndarray, bound: MagnitudeBound) -> tuple[float, int]:
    """The largest ratio to the bound over one stream's events ([T, F]), and how many events reach 1."""
    features = values.shape[1]
    weights = ModelWeights.random(ModelConfig(cell="gru", n_features=features, hidden_size=4), seed=0)
    detector = Detector(weights, max_streams=1, magnitude=None)  # the running statistics, without the bound
    table = detector.table
    worst, over = 0.0, 0
    x = values.astype(np.float32)
    for i in range(x.shape[0]):
        rows, _ = table.rows_for(["s"])
        count = int(table.columns[COUNT][rows[0]])
        mean, var = table.columns[NORM][rows[0]].astype(np.float64)
        if count >= bound.min_count:
            scale = np.maximum(np.sqrt(np.maximum(var, 0)), np.maximum(bound.floor_rel * np.abs(mean), bound.floor_abs))
            ratio = float(
                np.where(var > 0, np.abs(x[i] - mean) / (bound.k * scale), np.abs(x[i]) / bound.absolute).max()
            )
        else:
            ratio = float(np.abs(x[i]).max() / bound.absolute)
        worst = max(worst, ratio)
        over += ratio > 1.0
        detector.step(["s"], np.array([float(i)]), x[i : i + 1])
    return worst, over


def _measure(streams: Iterable[np.ndarray], bound: MagnitudeBound) -> tuple[int, int, float, int]:
    n_streams = n_events = over = 0
    worst = 0.0
    for values in streams:
        ratio, rejected = _ratios(values, bound)
        n_streams, n_events = n_streams + 1, n_events + values.shape[0]
        worst, over = max(worst, ratio), over + rejected
    return n_streams, n_events, worst, over


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nab", default="../shared/datasets/nab", help="NAB checkout (data/ and labels/)")
    parser.add_argument("--seeds", type=int, default=2, help="fleet seeds per split")
    args = parser.parse_args()
    bound = MagnitudeBound()
    nab = load_series(args.nab)
    splits = {
        "TUNE": (
            [f.values[:, None] for f in nab if file_half(f.name) == 0],
            TUNE_SEEDS[: args.seeds],
        ),
        "REPORT": (
            [f.values[:, None] for f in nab if file_half(f.name) == 1],
            REPORT_SEEDS[: args.seeds],
        ),
    }
    print(f"bound: k={bound.k:g} floor_rel={bound.floor_rel:g} floor_abs={bound.floor_abs:g} "
          f"absolute={bound.absolute:g} min_count={bound.min_count}")  # fmt: skip
    print(f"{'split':<8}{'corpus':<8}{'streams':>8}{'events':>10}{'max ratio':>12}{'rejected':>10}{'seconds':>9}")
    result = {}
    for split, (nab_streams, seeds) in splits.items():
        fleet = [np.vstack([u.train, u.test]) for seed in seeds for u in make_fleet(seed)]
        for corpus, streams in (("nab", nab_streams), ("fleet", fleet)):
            started = time.perf_counter()
            n, events, worst, over = _measure(streams, bound)
            print(
                f"{split:<8}{corpus:<8}{n:>8}{events:>10}{worst:>12.3g}{over:>10}{time.perf_counter() - started:>9.1f}"
            )
            result[f"{split.lower()}_{corpus}_max_ratio"] = f"{worst:.3g}"
            result[f"{split.lower()}_{corpus}_rejected"] = str(over)
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
