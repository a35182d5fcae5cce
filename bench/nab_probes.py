"""Issue 16: bench-side probes of candidate scorers on NAB, beside the product path, on one split of the files.

`rnnwatch train` fits the model and the frozen envelope on the split's probationary rows (the product path,
``stream.evaluation.nab_product``; `rnnwatch score` gives the ``product`` row). The same trained weights are
then run bench-side, in the CLI's order (all events in stable time order, batches of 1024), as:

* ``product (bench-side)``: the EnvelopedDetector as `rnnwatch score` builds it (a check: equals ``product``);
* ``detector alone``: the bare Detector, no envelope (what `serve` ran before the envelope);
* ``envelope <param>=<v>``: the EnvelopedDetector with an envelope refitted on the same probationary rows
  with one EnvelopeParams field changed (``warmup=50``: a stream needs 250 rows, not 400, so short files get a
  reference; ``false_alarm=0.0005``; ``window=128``);
* ``envelope gated at kx target``: the product's envelope kept only for the streams that pass a label-free
  stability check of their own training rows: an envelope fitted on the first two thirds of the probationary
  rows lets at most k times its false-alarm target (0.5 %) of the last third reach 0.99;
* ``seasonal pipeline``: ``rnncore.stages.pipeline.ScoringPipeline`` (``--pipeline seasonal``) with its
  defaults, which were chosen on all of NAB in issue 6 (so its REPORT numbers are not clean either), with the
  trained weights and with seeded random ones (issue 6's NAB default);
* ``seasonal pipeline max envelope``: the row-wise max of that pipeline's score and the envelope's score alone;
* ``saturated ties by NLL`` / ``unsaturated r / c`` (diagnostics): the Detector's scores of exactly 1 ranked by
  their NLL, the envelope's ratio itself: what NAB's label-chosen threshold could do if scores did not saturate
  (at 0.99 nothing changes);
* ``... + refractory`` (diagnostic, not a candidate): a score kept only where it exceeds the decaying (1/1000)
  maximum of the file's earlier scores, a 1 only once per 300 events (``rnncore.stages.novelty``'s filter with
  range novelty off): how much of the loss is flagging a lasting state on every row rather than its onset.

Each row: NAB's protocol (label-chosen threshold per profile) and the default threshold 0.99, plus how many
rows reach 0.99 and how many saturate at exactly 1 (NAB's sweep cannot rank ties). Use ``--split tune`` to
choose; ``--split report`` only to report what was chosen.

    nice -n 10 .venv/bin/python bench/nab_probes.py --split tune
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rnncore.detector import Detector, StepResult
from rnncore.errors import EnvelopeError
from rnncore.model.artifact import load_artifact
from rnncore.model.envelope_file import load_envelope
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import EW_COLUMN, REF_COLUMN, EnvelopeParams, fit_envelope
from rnncore.stages.enveloped import EnvelopedDetector
from rnncore.stages.novelty import NoveltyParams, novelty_schema, novelty_step
from rnncore.stages.pipeline import ScoringPipeline
from rnncore.stages.selffit import training_ratios
from rnncore.state.table import EventStatus
from stream.data.eventlog import EventRecord
from stream.evaluation.nab_data import NabFile, load_profiles, load_series, load_windows
from stream.evaluation.nab_product import train_and_score
from stream.evaluation.nab_report import short
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


def nll_ties(result: StepResult) -> np.ndarray:
    """The Detector's scores with its saturated ones (exactly 1) ranked by their NLL, above every other score."""
    s = result.scores.astype(np.float64)
    return np.where(s >= 1.0, 1.5 + np.arctan(result.nll.astype(np.float64)) / np.pi, s)


class EnvelopeOnly(EnvelopedDetector):
    """The envelope's score alone (the Detector still advances, its score is dropped); with ``ratio``, the
    unsaturated ``r / c`` itself (its score ``1 - 0.01 ** ratio`` is exactly 1 in float32 beyond ratio ~3.6)."""

    ratio = False

    def step(self, keys: Sequence[object], times: Any, values: Any) -> StepResult:
        keys = keys if isinstance(keys, list) else list(keys)
        rows, status = self.assign_rows(keys, times, values)
        result = self.step_rows(rows, status, times, values)
        ok = result.status == EventStatus.OK
        columns = self.table.columns
        refs = self.envelope.row_refs(columns[REF_COLUMN], rows, ok, keys)
        ratio = training_ratios(
            self.envelope, columns[EW_COLUMN], rows, refs, ok, np.asarray(values, np.float64).reshape(-1, 1)
        )
        scores = np.where(ok, ratio if self.ratio else self.envelope.scores(ratio).astype(np.float32), 0.0)
        return StepResult(scores=scores, nll=result.nll, mean=result.mean, scale=result.scale, status=result.status)


def refractory(files: Sequence[NabFile], scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each file's scores through the novelty stage's refractory filter only (1000 events, hold 300)."""
    params = NoveltyParams(range_novelty=False, level_window=0, refractory_events=1000, ceiling_hold=300)
    out = {}
    for f in files:
        columns = {k: np.zeros((1, *shape), dtype=dtype) for k, (shape, dtype) in novelty_schema(params).items()}
        n = f.values.size
        rows, ok = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
        out[f.name] = novelty_step(params, columns, rows, f.values, scores[f.name], ok)
    return out


def gate_rates(files: Sequence[NabFile], weights: ModelWeights) -> dict[str, float]:
    """Label-free stability check of each stream's training rows: an envelope fitted on the first two thirds
    of its probationary rows, then the share of the last third that reaches 0.99 (streams with too few rows for
    that envelope are left out)."""
    heads = [NabFile(f.name, f.timestamps[:n], f.values[:n]) for f in files for n in [probation_length(f.values.size)]]
    firsts = [
        NabFile(f.name, f.timestamps[: 2 * f.values.size // 3], f.values[: 2 * f.values.size // 3]) for f in heads
    ]
    try:
        envelope = fit_envelope(probation_records(firsts, whole=True))
    except EnvelopeError:
        return {}
    scores = stream_scores(heads, EnvelopeOnly(weights, envelope, max_streams=max(len(heads), 1)))
    return {
        f.name: float((scores[f.name][2 * f.values.size // 3 :] >= THRESHOLD).mean())
        for f in heads
        if f.name in envelope.index
    }


def gated(records: Sequence[EventRecord], rates: dict[str, float], limit: float) -> Any:
    """The product's envelope (fitted on all probationary rows) for the streams whose check rate is <= limit;
    None when no stream passes."""
    kept = [r for r in records if rates.get(str(r.key), math.inf) <= limit]
    try:
        return fit_envelope(kept) if kept else None
    except EnvelopeError:
        return None


def with_envelope(weights: ModelWeights, envelope: Any, streams: int) -> Callable[[], Any]:
    """A builder of the EnvelopedDetector with ``envelope``, or of the bare Detector when it is None."""
    if envelope is None:
        return lambda: Detector(weights, max_streams=streams)
    return lambda: EnvelopedDetector(weights, envelope, max_streams=streams)


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
    if envelope is None or run.threshold != THRESHOLD:
        print(f"nab_probes: expected an envelope and threshold {THRESHOLD}, got {run.threshold}", file=sys.stderr)
        return 2
    records = probation_records(files)
    n = max(len(files), 1)

    def enveloped(**change: Any) -> Callable[[], Any]:
        params = replace(EnvelopeParams(), **change)
        return lambda: EnvelopedDetector(weights, fit_envelope(records, params), max_streams=n)

    candidates: dict[str, Callable[[], Any]] = {
        "product (bench-side)": lambda: EnvelopedDetector(weights, envelope, max_streams=n),
        "detector alone": lambda: Detector(weights, max_streams=n),
        "envelope warmup=50": enveloped(warmup=50),
        "envelope false_alarm=0.0005": enveloped(false_alarm=0.0005),
        "envelope window=128": enveloped(window=128),
        "seasonal pipeline (NAB-chosen), trained": lambda: ScoringPipeline(weights, max_streams=n),
        "seasonal pipeline (NAB-chosen), random weights": lambda: ScoringPipeline(
            ModelWeights.random(weights.config, seed=0), max_streams=n
        ),
        "envelope alone": lambda: EnvelopeOnly(weights, envelope, max_streams=n),
    }
    rates = gate_rates(files, weights)
    for k in (2, 5, 10):
        envelope_k = gated(records, rates, k * EnvelopeParams().false_alarm)
        kept = 0 if envelope_k is None else len(envelope_k.index)
        candidates[f"envelope gated at {k}x target ({kept} of {len(envelope.index)} streams)"] = with_envelope(
            weights, envelope_k, n
        )
    scored = {"product (`rnnwatch score`)": run.scores}
    for name, build in candidates.items():
        scored[name] = stream_scores(files, build())
    pipeline, alone = scored["seasonal pipeline (NAB-chosen), trained"], scored.pop("envelope alone")
    scored["seasonal pipeline, trained, max envelope"] = {k: np.maximum(pipeline[k], alone[k]) for k in pipeline}
    scored["envelope alone"] = alone
    scored["detector alone, saturated ties by NLL (diagnostic)"] = stream_scores(
        files, Detector(weights, max_streams=n), nll_ties
    )
    unsaturated = EnvelopeOnly(weights, envelope, max_streams=n)
    unsaturated.ratio = True
    scored["envelope alone, unsaturated r / c (diagnostic)"] = stream_scores(files, unsaturated)
    scored["product + refractory (diagnostic)"] = refractory(files, run.scores)
    scored["detector alone + refractory (diagnostic)"] = refractory(files, scored["detector alone"])
    gap = max(float(np.abs(scored["product (bench-side)"][f.name] - run.scores[f.name]).max()) for f in files)
    names = "".join(f" {short(p.name)} |" for p in profiles)
    print(
        f"NAB {args.split}: {len(files)} files, {sum(f.values.size for f in files)} rows; trained on "
        f"{len(records)} probationary rows; bench-side product vs `rnnwatch score`: max |difference| {gap:.2g}"
    )
    print(f"| candidate | NAB best:{names} at 0.99:{names} rows >= 0.99 | rows = 1 |")
    print("|---|" + "---|" * (2 * len(profiles) + 2))
    fields = {}
    for name, scores in scored.items():
        best = score_corpus(scores, windows, profiles)
        fixed = score_corpus(scores, windows, profiles, THRESHOLD)
        flat = np.concatenate(list(scores.values()))
        cells = " | ".join(f"{r[p.name].normalised:.2f}" for r in (best, fixed) for p in profiles)
        print(f"| {name} | {cells} | {(flat >= THRESHOLD).mean():.1%} | {(flat >= 1.0).mean():.1%} |")
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
