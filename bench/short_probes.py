"""Issue 16, bench-side only: choose the fit lengths and warm-ups for short histories on the experiment TUNE seeds.

The network's weights do not depend on these constants, so each testbed is trained once (`bench/experiments.py
--keep DIR` leaves ``DIR/bed<seed>/{own,free-work}/model``); then, for each candidate, the envelope is refitted on
the same training rows (``fit_envelope`` with the candidate's ``EnvelopeParams``) and the same test rows are scored
by an ``EnvelopedDetector`` with the candidate's ``SelfFitParams`` and ``ScoringParams`` (a fresh state per run,
each file's rows in time order, as `rnnwatch score` runs them). The product's numbers come from `rnnwatch bench
experiments`, not from here.

    nice -n 10 .venv/bin/python bench/short_probes.py --cache DIR --seeds 0 1 2 3 4 5 6 7
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rnncore.calibration import ScoringParams
from rnncore.model.artifact import load_artifact
from rnncore.stages.envelope import Envelope, EnvelopeError, EnvelopeParams, fit_envelope
from rnncore.stages.enveloped import EnvelopedDetector
from rnncore.stages.selffit import SelfFitParams
from stream.data.eventlog import read_event_logs
from stream.evaluation.rigs.experiments import make_testbed
from stream.evaluation.user_report import Scored, measure, pool, scored

# (envelope warm-up, self-fit events, self-fit held-out events, calibration warm-up, trained fit fraction)
CANDIDATES: tuple[tuple[int, int, int, int, float], ...] = (
    (200, 900, 400, 200, 0.7),  # the old lengths (with the new minimum of warm-up + 100 rows)
    (32, 200, 100, 30, 0.7),
    (32, 200, 100, 200, 0.7),
    (16, 200, 100, 30, 0.7),
    (64, 200, 100, 30, 0.7),
    (32, 150, 100, 30, 0.7),
    (32, 250, 60, 30, 0.7),
    (32, 150, 150, 30, 0.7),
    (32, 200, 100, 10, 0.7),
    (32, 200, 100, 60, 0.7),
    (32, 200, 100, 30, 0.5),
)


def _score(detector: EnvelopedDetector, key: str, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = []
    for s in range(0, len(times), 256):
        out.append(detector.step([key] * len(times[s : s + 256]), times[s : s + 256], values[s : s + 256]).scores)
    return np.concatenate(out).astype(np.float64)


def _run(cache: Path, seed: int, cand: tuple[int, int, int, int, float]) -> dict[str, list[Scored]]:
    warm, fit, held, cal, share = cand
    params = EnvelopeParams(warmup=warm, fit_fraction=share)
    bed = make_testbed(seed)
    out: dict[str, list[Scored]] = {"own": [], "free": []}
    for mode, sub in (("own", "own"), ("free", "free-work")):
        root = cache / f"bed{seed}" / sub
        weights = load_artifact(root / "model")
        records, _ = read_event_logs([root / "train.csv"])
        try:
            envelope = fit_envelope(records, params) if mode == "own" else Envelope.empty(8, params)
        except EnvelopeError:
            envelope = Envelope.empty(8, params)
        det = EnvelopedDetector(weights, envelope, self_fit=SelfFitParams(fit_events=fit, held_events=held),
                                scoring=ScoringParams(warmup_events=cal))  # fmt: skip
        for e in bed.experiments:
            first = e.events[0][1] if mode == "own" else 0
            s = _score(det, e.name, e.times[first:], e.values[first:].astype(np.float32))
            out[mode].append(scored(e.name, e.times[first:], e.labels[first:], s, 0.99))
    return out


def main(argv: list[str] | None = None) -> int:
    """Every candidate on the cached testbeds; one line per candidate and mode."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    args = parser.parse_args(argv)
    print("warmup fit held cal fit_fraction | own f1 fa ev_f1 best | free f1 fa ev_f1 best")
    for cand in CANDIDATES:
        pooled: dict[str, list[Scored]] = {"own": [], "free": []}
        for seed in args.seeds:
            for mode, got in _run(args.cache, seed, cand).items():
                pooled[mode] += got
        cells = []
        for mode in ("own", "free"):
            m = measure(pool(pooled[mode]))
            cells.append(f"{m['f1']:.3f} {m['false_alarm']:.3f} {m['event_f1']:.3f} {m['best_f1']:.3f}")
        print(f"{cand} | {cells[0]} | {cells[1]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
