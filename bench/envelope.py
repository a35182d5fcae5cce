"""Cost of the envelope (issue 16): events/s of what ``rnncore.build_scorer`` builds against the bare Detector.

One process, ``--streams`` streams, one event per stream per batch, a random GRU of rnnwatch train's size (H=64),
single-feature and 8-feature. Scorers: the bare ``Detector`` (the baseline), the enveloped Detector with every
stream's training reference (``trained``), and with none, so every stream fits its own online
(``self_fit``: timed in its first fit phase, ``self_fit_fitting``, in its second stage's fit phase while the
provisional reference scores, ``self_fit_second``, and once every final reference is frozen). Every scorer is
timed past the Detector's calibration warm-up, at the same event numbers. CPU time of this
thread, median of ``--repeats`` timed passes of ``--steps`` batches each; ends with a ``RESULT`` line.

    nice -n 10 .venv/bin/python bench/envelope.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnncore.contract import EventRecord  # noqa: E402
from rnncore.detector import Detector  # noqa: E402
from rnncore.model.config import ModelConfig  # noqa: E402
from rnncore.model.weights import ModelWeights  # noqa: E402
from rnncore.stages.envelope import Envelope, EnvelopeParams, fit_envelope  # noqa: E402
from rnncore.stages.enveloped import EnvelopedDetector  # noqa: E402
from rnncore.stages.selffit import SelfFitParams  # noqa: E402


def _feed(detector: Detector, keys: list[str], values: np.ndarray, start: int, stop: int) -> None:
    """Batches ``start..stop-1`` (every stream's event number ``t + 1``), untimed."""
    for t in range(start, stop):
        detector.step(keys, np.full(len(keys), float(t)), values[t % values.shape[0]])


def _rate(detector: Detector, keys: list[str], values: np.ndarray, t0: int, steps: int, repeats: int) -> float:
    """Median events/s (thread CPU time) over ``repeats`` passes of ``steps`` batches, from batch ``t0`` on."""
    rates, t = [], t0
    for _ in range(repeats):
        start = time.thread_time()
        _feed(detector, keys, values, t, t + steps)
        t += steps
        rates.append(steps * len(keys) / (time.thread_time() - start))
    return float(np.median(rates))


WARMUP, FIT, HELD = 250, 60, 40  # the online fit's phases here: past the Detector's calibration warm-up (200)
FIT2, HELD2 = 60, 40  # its second stage (batches 350..450)
FROZEN_FROM = 500  # every scorer is timed from here on, when every self-fitted reference is final


def measure(features: int, streams: int, steps: int, repeats: int) -> dict[str, float]:
    """events/s per scorer for one width."""
    weights = ModelWeights.random(ModelConfig(cell="gru", hidden_size=64, n_features=features), seed=0)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(512, streams, features)).astype(np.float32)
    keys = [f"s{i}" for i in range(streams)]
    train = [EventRecord(k, float(t), tuple(rng.normal(size=features))) for k in keys for t in range(400)]
    params = EnvelopeParams(warmup=WARMUP)
    fit = SelfFitParams(fit_events=FIT, held_events=HELD, final_fit_events=FIT2, final_held_events=HELD2)
    scorers = {
        "detector": Detector(weights, max_streams=streams),
        "trained": EnvelopedDetector(weights, fit_envelope(train, EnvelopeParams(warmup=50)), max_streams=streams),
        "self_fit": EnvelopedDetector(weights, Envelope.empty(features, params), self_fit=fit, max_streams=streams),
    }
    out: dict[str, float] = {}
    for name, scorer in scorers.items():
        _feed(scorer, keys, values, 0, WARMUP)  # compiles, creates the rows, passes the calibration warm-up
        if name == "self_fit":  # batches WARMUP.. are every stream's first fit phase, from SECOND its second's
            out["self_fit_fitting"] = _rate(scorer, keys, values, WARMUP, FIT // repeats, repeats)
            second = WARMUP + FIT + HELD
            _feed(scorer, keys, values, WARMUP + (FIT // repeats) * repeats, second)
            out["self_fit_second"] = _rate(scorer, keys, values, second, FIT2 // repeats, repeats)
            _feed(scorer, keys, values, second + (FIT2 // repeats) * repeats, FROZEN_FROM)
        else:
            _feed(scorer, keys, values, WARMUP, FROZEN_FROM)
        out[name] = _rate(scorer, keys, values, FROZEN_FROM, steps, repeats)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20, help="batches per timed pass")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    results = {f: measure(f, args.streams, args.steps, args.repeats) for f in (1, 8)}
    print(f"{'F':>3} {'scorer':<18}{'events/s':>12}{'x detector':>12}")
    for f, rates in results.items():
        for name, rate in rates.items():
            print(f"{f:>3} {name:<18}{rate:>12,.0f}{rate / rates['detector']:>12.2f}")
    one, eight = results[1], results[8]
    print(
        f"RESULT f1_detector={one['detector']:.0f} f1_trained_x={one['trained'] / one['detector']:.2f} "
        f"f1_self_fit_x={one['self_fit'] / one['detector']:.2f} "
        f"f1_fitting_x={one['self_fit_fitting'] / one['detector']:.2f} "
        f"f1_second_x={one['self_fit_second'] / one['detector']:.2f} f8_detector={eight['detector']:.0f} "
        f"f8_trained_x={eight['trained'] / eight['detector']:.2f} "
        f"f8_self_fit_x={eight['self_fit'] / eight['detector']:.2f} "
        f"f8_fitting_x={eight['self_fit_fitting'] / eight['detector']:.2f} "
        f"f8_second_x={eight['self_fit_second'] / eight['detector']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
