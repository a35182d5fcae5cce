"""Real false-alarm rate of a new stream's first events on normal data, with and without the calibration prior.

Per fleet seed of the split (``stream.evaluation.fleet``), `rnnwatch train` on the clean training rows (its own
parser and ``run``, defaults; one model per feature width), then every unit's test rows *before their faults were
injected* (``FleetUnit.clean_test``: normal data) replayed under a new key, so each is a stream nobody has seen:
no training reference, its calibration starting fresh. Scored by what `serve` builds (``build_scorer`` with the
artifact's weights and envelope, defaults), twice in the same process: the artifact as written (with the prior
`rnnwatch train` stores) and the same weights without it (what every model did before: a 200-event warm-up).
Every flag is a false alarm; the share of events flagged at the default threshold is reported by event index.

    nice -n 10 .venv/bin/python bench/new_stream_alarms.py --split tune --seeds 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnncore.calibration import ScoringParams
from rnncore.calibration_prior import PRIOR_FIELD
from rnncore.contract import EventStatus, StreamScorer
from rnncore.model.artifact import load_artifact
from rnncore.model.envelope_file import load_envelope
from rnncore.model.weights import ModelWeights
from rnncore.scorer import build_scorer
from rnncore.stages.enveloped import EnvelopedDetector
from rnncore.training.prior import without_prior
from stream.commands import train
from stream.commands.config_flags import flag_for
from stream.evaluation.fleet.generator import FleetUnit, make_fleet
from stream.evaluation.fleet.product import write_log
from stream.evaluation.fleet.runner import split_seeds
from stream.evaluation.product_path import run_cli

BUCKETS = ((0, 31), (31, 100), (100, 200), (200, 4000))  # event indices (0-based) of a new stream


def _scorer(weights: ModelWeights, directory: Path, streams: int, candidate: tuple[int, int] | None) -> StreamScorer:
    """What `serve` builds (``build_scorer``), or for a candidate ``(prior_events, prior_warmup_events)`` the same
    enveloped Detector with those two calibration settings (a tuning probe: no product flag)."""
    envelope = load_envelope(directory)
    if candidate is None:
        return build_scorer(weights, envelope, max_streams=streams)
    scoring = ScoringParams(prior_events=candidate[0], prior_warmup_events=candidate[1])
    return EnvelopedDetector(weights, envelope, max_streams=streams, scoring=scoring)


def _flags(scorer: StreamScorer, units: list[FleetUnit], threshold: float) -> np.ndarray:
    """[units, T] flags of each unit's clean test rows, replayed as new streams (one event per unit per batch)."""
    T = min(u.clean_test.shape[0] for u in units)
    flags = np.zeros((len(units), T), dtype=bool)
    keys = [f"new-{u.name}" for u in units]
    for k in range(T):
        result = scorer.step(keys, [float(u.test_times[k]) for u in units], np.stack([u.clean_test[k] for u in units]))
        flags[:, k] = (result.scores >= threshold) & (result.status == EventStatus.OK)
    return flags


def main(argv: list[str] | None = None) -> int:
    """Train per seed and width, replay the clean test rows as new streams, print the table and a RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "report"), default="tune")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument(
        "--candidates", default="", help="also score with these prior_events:prior_warmup_events, e.g. 200:10,50:30"
    )
    args = parser.parse_args(argv)
    started, threshold = time.time(), float(flag_for("anomaly_threshold").default)
    candidates = [tuple(int(x) for x in c.split(":")) for c in args.candidates.split(",") if c]
    names = ["without prior", "with prior", *(f"prior {p}:{w}" for p, w in candidates)]
    counts = {name: np.zeros((len(BUCKETS), 2)) for name in names}
    for seed in split_seeds(args.split, args.seeds):
        units = make_fleet(seed)
        for width in sorted({u.train.shape[1] for u in units}):
            group = [u for u in units if u.train.shape[1] == width]
            with tempfile.TemporaryDirectory() as tmp:
                log, out = write_log(Path(tmp) / "train.csv", group, "train"), Path(tmp) / "model"
                run_cli(train.add_arguments, train.run, ["--logs", str(log), "--out", str(out), "--no-progress"])
                weights = load_artifact(out)
                streams = len(group)
                variants = {
                    "without prior": _scorer(without_prior(weights), out, streams, None),
                    "with prior": _scorer(weights, out, streams, None),
                    **{f"prior {p}:{w}": _scorer(weights, out, streams, (p, w)) for p, w in candidates},
                }
                for name, scorer in variants.items():
                    flags = _flags(scorer, group, threshold)
                    for b, (lo, hi) in enumerate(BUCKETS):
                        counts[name][b] += (flags[:, lo:hi].sum(), flags[:, lo:hi].size)
                print(f"seed {seed} F={width}: prior {weights.metadata.get(PRIOR_FIELD)}", file=sys.stderr)
    header = "".join(f"{f'events {lo + 1}-{hi}':>16}" for lo, hi in BUCKETS)
    print(f"{args.split} seeds {split_seeds(args.split, args.seeds)}: share of clean new-stream events at >= "
          f"{threshold} (all false alarms)")  # fmt: skip
    print(f"{'scorer':<16}{header}{'events 1-200':>16}{'all':>10}")
    result = []
    for name, c in counts.items():
        first = c[:3, 0].sum() / c[:3, 1].sum()
        every = c[:, 0].sum() / c[:, 1].sum()
        print(f"{name:<16}" + "".join(f"{n / m:>16.4%}" for n, m in c) + f"{first:>16.4%}{every:>10.4%}")
        if name not in ("without prior", "with prior"):
            continue
        tag = "prior" if name == "with prior" else "plain"
        result.append(f"{tag}_first200={first:.5f} {tag}_after200={c[3, 0] / c[3, 1]:.5f}")
    print(f"RESULT {' '.join(result)} seconds={time.time() - started:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
