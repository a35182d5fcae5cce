"""`rnnwatch score --logs FILE --model-dir DIR --out FILE`: score an event log offline through the service's path.

Events are ordered by time (stable, so equal times keep file order) and fed to the scorer the service runs
(:func:`rnncore.scorer.build_scorer`, the one place that chooses it), in micro-batches of consecutive events; the
scorer applies a stream's events in arrival order, so the scores equal feeding events one at a time, and no event
sees a later one. Output: one record per event with key, time, score, rarity (``-log10(1 - score)``, unbounded:
it orders alarms where the score reads 1; ``StepResult.rarity``), anomaly flag (score >= threshold) and status,
as JSON Lines or CSV (by suffix); for a multi-feature model also each feature's share of what drives the
score (``StepResult.contributions``: a ``contributions`` list, or ``contribution_0..F-1`` CSV columns).

``--scoring-pipeline seasonal`` (serve's ``scoring_pipeline``) scores through
:class:`rnncore.stages.pipeline.ScoringPipeline` instead of the bare
Detector: the Detector forecasts each stream's seasonal residual and its score is merged with the calibrated seasonal
surprise, graded range novelty and a refractory filter, online and per stream (issue 6's detector, with
settings chosen on NAB itself; single-value streams). The default, ``detector``, is what ``rnnwatch serve`` runs.

``--bidirectional`` rescores with a bidirectional artifact (``rnnwatch train --bidirectional``) instead: each
event's surprise comes from the events before *and after* it (``rnncore.model.bidirectional``), calibrated per
stream like the service's. Same columns plus ``causal`` = false on every row, so the file cannot pass for
causal output. A bidirectional artifact without the flag (and a causal one with it) is refused.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from rnncore.errors import RnnCoreError
from stream.errors import StreamError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: inputs, model artifact, output file and the anomaly threshold."""
    from stream.commands.config_flags import add_setting_flag
    from stream.commands.progress import add_progress_flag

    parser.add_argument("--logs", nargs="+", required=True, metavar="PATH", help="JSON Lines / CSV event logs or dirs")
    model_help = "model directory (rnnwatch train --out): a versioned store, scored at its current version"
    add_setting_flag(parser, "model_dir", "--model", dest="model", required=True, help=model_help)
    parser.add_argument("--out", required=True, type=Path, help="output file: .jsonl or .csv")
    add_setting_flag(parser, "anomaly_threshold", "--threshold", dest="threshold")
    parser.add_argument("--batch-size", type=int, default=1024, help="events per Detector.step call")
    parser.add_argument("--max-streams", type=int, default=1_000_000, help="state table capacity")
    add_setting_flag(parser, "warmup_events")
    add_setting_flag(parser, "prior_warmup_events")
    add_setting_flag(parser, "scoring_pipeline", "--pipeline", dest="pipeline")
    parser.add_argument(
        "--plot", type=Path, default=None, help="also write a PNG of the streams with the most flags (needs matplotlib)"
    )
    parser.add_argument("--plot-streams", type=int, default=4, help="--plot: how many streams")
    add_progress_flag(parser)
    parser.add_argument(
        "--bidirectional",
        action="store_true",
        help="non-causal offline rescoring with a bidirectional artifact (scores may use later events)",
    )


OUTPUT_SUFFIXES = (".csv", ".jsonl", ".ndjson")  # CSV, else JSON Lines (not .json: one document, not lines)


def _cut(rarity: float) -> float:
    """The rarity cut down to 4 decimals, as the score record writes it (1.99997 stays below the threshold's 2)."""
    return math.floor(rarity * 1e4) / 1e4 if abs(rarity) < 1e12 else rarity


def _writer(path: Path, causal: bool = True, n_features: int = 1) -> tuple[Any, Any]:
    """Open ``path`` and return (handle, emit); non-causal output gets an extra ``causal`` column (false). For a
    multi-feature model each row also says which features drive its score: a ``contributions`` list (JSON Lines)
    or ``contribution_0..F-1`` columns (CSV); ``emit``'s optional last argument, None before it is known."""
    handle = path.open("w", newline="")
    shares = n_features > 1
    if path.suffix.lower() == ".csv":
        table = csv.writer(handle)
        contribution_columns = [f"contribution_{j}" for j in range(n_features)] if shares else []
        table.writerow(
            [
                "key",
                "time",
                "score",
                "rarity",
                "anomaly",
                "status",
                *([] if causal else ["causal"]),
                *contribution_columns,
            ]  # fmt: skip
        )
        marker = [] if causal else [0]

        def emit_csv(key: str, t: float, s: float, rarity: float, a: bool, st: str,
                     share: list[float] | None = None) -> None:  # fmt: skip
            cells = [] if not shares else [""] * n_features if share is None else [f"{v:.4g}" for v in share]
            table.writerow([key, repr(t), f"{s:.6g}", f"{_cut(rarity):.4f}", int(a), st, *marker, *cells])

        return handle, emit_csv
    extra = {} if causal else {"causal": False}

    def emit_json(key: str, t: float, s: float, rarity: float, a: bool, st: str,
                  share: list[float] | None = None) -> None:  # fmt: skip
        row = {"key": key, "time": t, "score": s, "rarity": _cut(rarity), "anomaly": a, "status": st, **extra}
        if shares:
            row["contributions"] = share if share is not None else [None] * n_features
        handle.write(orjson.dumps(row).decode() + "\n")

    return handle, emit_json


def score_bidirectional(records: list[Any], weights: Any, threshold: float, emit: Any) -> int:
    """Rescore all records with a bidirectional model and emit rows in time order; returns the anomaly count."""
    from rnncore.contract import rarity_of
    from rnncore.training.bidirectional import score_records

    result = score_records(weights, records)
    rarity = rarity_of(result.scores)
    anomalies = 0
    for i in sorted(range(len(records)), key=lambda i: records[i].time):
        score = float(result.scores[i])
        flagged = bool(score >= threshold)
        anomalies += flagged
        emit(records[i].key, records[i].time, score, float(rarity[i]), flagged, "ok")
    return anomalies


def score_events(
    records: list[Any],
    detector: Any,
    threshold: float,
    batch_size: int,
    emit: Any,
    observe: Any = None,
    tick: Callable[[int], object] | None = None,
) -> tuple[int, int]:
    """Feed records (time-ordered) to the detector in batches; emit one output row each; returns (events, anomalies).
    ``observe(key, time, values, score, flagged, mean, scale)`` sees every event too (``--plot``); ``tick(n)`` hears
    of every batch of ``n`` events done (a progress bar's ``update``)."""
    order = sorted(range(len(records)), key=lambda i: records[i].time)
    anomalies = 0
    for start in range(0, len(order), batch_size):
        batch = [records[i] for i in order[start : start + batch_size]]
        keys = [r.key for r in batch]
        times = np.array([r.time for r in batch], dtype=np.float64)
        values = np.array([r.values for r in batch], dtype=np.float64)  # the Detector takes them as float32
        result = detector.step(keys, times, values)
        reasons = result.reasons()
        shares = [None] * len(batch) if result.contributions is None else result.contributions.tolist()
        rarity = result.rarities().tolist()
        for i, (record, score, reason, share) in enumerate(zip(batch, result.scores.tolist(), reasons, shares,
                                                                strict=True)):  # fmt: skip
            flagged = bool(score >= threshold)
            anomalies += flagged
            emit(record.key, record.time, score, rarity[i], flagged, reason, share)
            if observe is not None:
                observe(record.key, record.time, record.values, score, flagged, float(result.mean[i, 0]),
                        float(result.scale[i, 0]))  # fmt: skip
        if tick is not None:
            tick(len(batch))
    return len(order), anomalies


def _envelope_note(pipeline: str, envelope: Any) -> str:
    """What the summary line says about the envelope the scores used."""
    if pipeline != "detector":
        return ""
    if envelope is None:
        return " (no training envelope: every stream fits its own online)"
    return f" with the training envelope of {len(envelope.index)} streams (any other stream fits its own online)"


def run(args: argparse.Namespace) -> int:
    """Score the logs; returns 0, or 2 with a one-line message when inputs or model cannot be used."""
    from rnncore.model.artifact import load_artifact
    from rnncore.model.bidirectional import ensure_bidirectional, ensure_causal
    from rnncore.model.envelope_file import load_envelope
    from rnncore.scorer import build_scorer
    from stream.commands import progress
    from stream.commands.model_path import ensure_model_dir
    from stream.data.eventlog import read_event_logs

    if not 0.0 <= args.threshold <= 1.0 or args.batch_size < 1:
        print("rnnwatch score: --anomaly-threshold must be in [0, 1] and --batch-size >= 1", file=sys.stderr)
        return 2
    if args.out.suffix.lower() == ".json":
        print(f"rnnwatch score: --out {args.out}: the rows are JSON Lines (one object per line), which a .json "
              "reader takes for one broken document; name it .jsonl (or .csv)", file=sys.stderr)  # fmt: skip
        return 2
    if args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        print(
            f"rnnwatch score: --out {args.out} : write .csv or JSON Lines ({', '.join(OUTPUT_SUFFIXES[1:])}); "
            f"{args.out.suffix or 'no suffix'} is not a format this command writes",
            file=sys.stderr,
        )
        return 2
    if args.plot is not None:
        from stream.evaluation.user_plot import have_matplotlib

        if args.plot.suffix.lower() != ".png" or args.plot_streams < 1 or args.bidirectional:
            print("rnnwatch score: --plot takes a .png path, --plot-streams >= 1, and no --bidirectional",
                  file=sys.stderr)  # fmt: skip
            return 2
        if not have_matplotlib():
            print("rnnwatch score: --plot needs matplotlib: pip install 'rnnwatch[demo]'", file=sys.stderr)
            return 2
    pipeline = getattr(args, "pipeline", "detector")
    if args.bidirectional and pipeline != "detector":
        print("rnnwatch score: --bidirectional rescoring is offline and takes no --scoring-pipeline", file=sys.stderr)
        return 2
    try:
        ensure_model_dir(args.model, "--model-dir")
        weights = load_artifact(args.model)
        if args.bidirectional:
            ensure_bidirectional(weights.config, "rnnwatch score --bidirectional")
        else:
            ensure_causal(weights.config, "rnnwatch score (without --bidirectional)")
        records, summary = read_event_logs(args.logs)
    except (RnnCoreError, StreamError) as error:
        print(f"rnnwatch score: {error}", file=sys.stderr)
        return 2
    if summary.n_features is not None and summary.n_features != weights.config.n_features:
        print(
            f"rnnwatch score: the logs have {summary.n_features} value(s) per event, the model "
            f"{args.model} takes {weights.config.n_features}: score with a model trained on such logs",
            file=sys.stderr,
        )
        return 2
    if args.bidirectional:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        handle, emit = _writer(args.out, causal=False)
        with handle:
            anomalies = score_bidirectional(records, weights, args.threshold, emit)
        print(
            f"scored {len(records)} events NON-CAUSALLY (bidirectional: scores use later events) "
            f"({summary.describe()}); {anomalies} at or above {args.threshold}; wrote {args.out}"
        )
        return 0
    try:
        envelope = load_envelope(args.model) if pipeline == "detector" else None
        detector = build_scorer(
            weights,
            envelope,
            pipeline=pipeline,
            max_streams=args.max_streams,
            warmup_events=args.warmup_events,
            prior_warmup_events=args.prior_warmup_events,
        )
    except (RnnCoreError, StreamError) as error:
        print(f"rnnwatch score: {error}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    handle, emit = _writer(args.out, n_features=weights.config.n_features)
    recorder = None
    if args.plot is not None:
        from stream.evaluation.score_plot import ScoreRecorder

        recorder = ScoreRecorder()
    with handle, progress.bar(len(records), "scoring", "event", disabled=args.no_progress) as shown:
        events, anomalies = score_events(records, detector, args.threshold, args.batch_size, emit, recorder,
                                         shown.update)  # fmt: skip
    if recorder is not None:
        from stream.evaluation.score_plot import plot_scored

        version = str(weights.metadata.get("version", "?"))
        plot_scored(args.plot, recorder, recorder.most_flagged(args.plot_streams), args.threshold, version)
        print(f"plot: {args.plot} ({min(args.plot_streams, len(recorder.streams))} streams with the most flags)")
    print(
        f"scored {events} events of {detector.n_streams} streams through the {pipeline} pipeline"
        f"{_envelope_note(pipeline, envelope)} "
        f"({summary.describe()}); "
        f"{anomalies} at or above {args.threshold}; wrote {args.out}"
    )
    return 0
