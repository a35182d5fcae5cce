"""Issue 16: bench-side probes of candidate scorers on NAB, beside the product path, on one split of the files.

`rnnwatch train` fits the model and the envelope on the split's probationary rows (the product path,
``stream.evaluation.nab_product``; `rnnwatch score` gives the ``product`` row). The same trained weights are
then run bench-side, in the CLI's order (all events in stable time order, batches of 1024), every candidate
ranked by its ``StepResult.rarities()`` (``-log10(1 - score)``, unbounded; 2 at the default threshold 0.99):

* ``product (bench-side)``: the EnvelopedDetector as `rnnwatch score` builds it (a check: equals ``product``);
* ``before``: training references from the probationary rows (``EnvelopeParams(min_history=0)``: at most 750
  rows) without the rank or the refit of lasting alarms (``AlarmParams(refit_window=0, rank_events=0)``), and
  each of the three changes on its own or together: the minimum history (NAB's streams then fit their own
  online), the rank (fresh onsets above old lasting states), the refit (an alarm lasting far longer than a
  fault drops the reference);
* ``detector alone``: the bare Detector, no envelope;
* ``seasonal pipeline``: ``rnncore.stages.pipeline.ScoringPipeline`` (``--pipeline seasonal``) with its
  defaults, which were chosen on all of NAB in issue 6 (so its REPORT numbers are not clean either), and the
  row-wise max of it and the product (the pipeline as a further channel of the one detector);
* ``product, float32 score field``: the sweep over `rnnwatch score`'s float32 ``score`` (what the sweep saw
  before the rarity: ties at 1);

Each row: NAB's protocol (label-chosen threshold per profile) and the default threshold, plus how many rows
reach it. Use ``--split tune`` to choose; ``--split report`` only to report what was chosen.

    nice -n 10 .venv/bin/python bench/nab_probes.py --split tune
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnncore.detector import Detector, StepResult
from rnncore.model.artifact import load_artifact
from rnncore.model.envelope_file import load_envelope
from rnncore.stages.envelope import Envelope, EnvelopeParams, fit_envelope
from rnncore.stages.enveloped import AlarmParams, EnvelopedDetector
from rnncore.stages.pipeline import ScoringPipeline
from stream.data.eventlog import EventRecord
from stream.evaluation.nab_data import NabFile, load_profiles, load_series, load_windows
from stream.evaluation.nab_product import train_and_score
from stream.evaluation.nab_report import short as short_name
from stream.evaluation.nab_scorer import probation_length, score_corpus
from stream.evaluation.nab_split import in_split

THRESHOLD = 0.99  # `rnnwatch score`'s default (the product row reads it from the CLI and checks it)
BATCH = 1024  # `rnnwatch score`'s default --batch-size


def stream_scores(
    files: Sequence[NabFile], detector: Any, pick: Callable[[StepResult], np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Every file's rows through ``detector`` as `rnnwatch score` feeds them: one stream per file, all events in
    stable time order (file by file before the sort), in batches of BATCH; ``pick`` maps a step's result to the
    scores kept (default: its scores)."""
    keys = np.concatenate([np.full(f.values.size, k) for k, f in enumerate(files)])
    rows = np.concatenate([np.arange(f.values.size) for f in files])
    times = np.concatenate([f.seconds for f in files])
    values = np.concatenate([f.values for f in files])
    names = [f.name for f in files]
    out = {f.name: np.zeros(f.values.size) for f in files}
    order = np.argsort(times, kind="stable")
    for start in range(0, order.size, BATCH):
        part = order[start : start + BATCH]
        result = detector.step([names[k] for k in keys[part].tolist()], times[part], values[part].reshape(-1, 1))
        kept = result.scores if pick is None else pick(result)
        for k, r, s in zip(keys[part].tolist(), rows[part].tolist(), kept.tolist(), strict=True):
            out[names[k]][r] = s
    return out


def probation_records(files: Sequence[NabFile], whole: bool = False) -> list[EventRecord]:
    """The rows `rnnwatch train` saw: each file's probationary rows (``whole``: every row of the given files)."""
    records = []
    for f in files:
        stop = f.values.size if whole else probation_length(f.values.size)
        for t, v in zip(f.seconds[:stop].tolist(), f.values[:stop].tolist(), strict=True):
            records.append(EventRecord(f.name, t, (v,)))
    return records


def main(argv: list[str] | None = None) -> int:
    """Train once through the CLI, score every candidate, print one Markdown table and a RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/nab"))
    parser.add_argument("--split", choices=("tune", "report", "all"), default="tune")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    every = load_series(args.data)
    chosen = set(in_split([f.name for f in every], args.split))
    files = [f for f in every if f.name in chosen]
    windows, profiles = load_windows(args.data, files), load_profiles(args.data)
    with tempfile.TemporaryDirectory(prefix="rnnwatch-nab-probes-") as tmp:
        run = train_and_score(files, Path(tmp))
        weights, envelope = load_artifact(run.artifact), load_envelope(run.artifact)
    if run.threshold != THRESHOLD:
        print(f"nab_probes: expected threshold {THRESHOLD}, got {run.threshold}", file=sys.stderr)
        return 2
    records = probation_records(files)
    n = max(len(files), 1)
    trained = envelope if envelope is not None else Envelope.empty(1)
    short = fit_envelope(records, EnvelopeParams(min_history=0))  # references from <= 750 rows (before)
    off = AlarmParams(refit_window=0, rank_events=0.0)
    ranked = AlarmParams(refit_window=0)

    def enveloped(reference: Envelope, alarm: AlarmParams) -> Callable[[], Any]:
        return lambda: EnvelopedDetector(weights, reference, max_streams=n, alarm=alarm)

    candidates: dict[str, Callable[[], Any]] = {
        "product (bench-side)": enveloped(trained, AlarmParams()),
        "before: 750-row references, no rank, no refit": enveloped(short, off),
        "750-row references + rank": enveloped(short, ranked),
        "750-row references + rank + refit": enveloped(short, AlarmParams()),
        "min history (self-fit online), no rank, no refit": enveloped(trained, off),
        "min history + rank": enveloped(trained, ranked),
        "min history + rank + refit 2000 / 0.3": enveloped(trained, AlarmParams(refit_level=0.3)),
        "min history + rank + refit 1000 / 0.5": enveloped(trained, AlarmParams(refit_window=1000)),
        "detector alone": lambda: Detector(weights, max_streams=n),
        "seasonal pipeline (NAB-chosen), trained": lambda: ScoringPipeline(weights, max_streams=n),
    }
    pick = StepResult.rarities
    scored = {"product (`rnnwatch score`)": run.rarity}
    for name, build in candidates.items():
        scored[name] = stream_scores(files, build(), pick)
    scored["product, float32 score field (no rarity)"] = run.scores
    product, pipeline = scored["product (bench-side)"], scored["seasonal pipeline (NAB-chosen), trained"]
    for w in (1.0, 0.2):
        combined = {k: np.maximum(pipeline[k], w * product[k]) for k in product}
        scored[f"max(seasonal pipeline, {w:g} x product)"] = combined
    gap = max(float(np.abs(product[f.name] - run.rarity[f.name]).max()) for f in files)
    names = "".join(f" {short_name(p.name)} |" for p in profiles)
    kept = 0 if envelope is None else len(envelope.index)
    print(
        f"NAB {args.split}: {len(files)} files, {sum(f.values.size for f in files)} rows; trained on "
        f"{len(records)} probationary rows ({kept} training references at the default minimum history, "
        f"{len(short.index)} without it); bench-side product vs `rnnwatch score`: max |rarity difference| {gap:.2g}"
    )
    print(f"| candidate | NAB best:{names} at 0.99:{names} rows >= 0.99 |")
    print("|---|" + "---|" * (2 * len(profiles) + 1))
    fields = {}
    at = float(-np.log10(1.0 - THRESHOLD))  # the rarity at the score threshold
    for name, values in scored.items():
        cut = THRESHOLD if "float32" in name else at
        best = score_corpus(values, windows, profiles)
        fixed = score_corpus(values, windows, profiles, cut)
        flat = np.concatenate(list(values.values()))
        cells = " | ".join(f"{r[p.name].normalised:.2f}" for r in (best, fixed) for p in profiles)
        print(f"| {name} | {cells} | {(flat >= cut).mean():.1%} |")
        key = re.sub(r"[^A-Za-z0-9.]+", "_", name.replace(" (diagnostic)", "").replace("NAB-chosen", "")).strip("_")
        fields[f"{key}_best"] = best[profiles[0].name].normalised
        fields[f"{key}_default"] = fixed[profiles[0].name].normalised
    print(
        "RESULT "
        + " ".join(f"{k}={v:.2f}" for k, v in fields.items())
        + f" seconds={time.perf_counter() - started:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
