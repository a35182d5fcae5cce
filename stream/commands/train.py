"""`rnnwatch train`: fit the model by truncated BPTT on event logs and write a model artifact.

torch is imported only inside ``run`` so the CLI (and the service) start without it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rnncore.errors import RnnCoreError
from rnncore.model.config import CELL_TYPES, ModelConfig
from stream.errors import StreamError

logger = logging.getLogger(__name__)

# the flags ModelConfig and TrainConfig take under their own names; ``run`` gives the renamed and derived ones
MODEL_FLAGS = ("cell", "hidden_size", "time_delta_feature", "dt_scale", "min_scale", "norm_window", "attention_window")
TRAIN_FLAGS = ("bptt", "batch_size", "segment_length", "warmup", "epochs", "grad_clip", "dropout", "patience")
BUDGET_FLAGS = ("max_event_steps", "seed", "threads")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: data source, architecture, optimisation and output."""
    from stream.commands.config_flags import CONNECTION, add_config_flags
    from stream.commands.progress import add_progress_flag
    from stream.commands.training_budget import add_train_minutes_flag

    data = parser.add_argument_group("data")
    data.add_argument("--logs", nargs="+", metavar="PATH", help="JSON Lines / CSV event logs or directories")
    data.add_argument("--topic", help="replay this Kafka topic's retained events instead of reading files")
    add_config_flags(parser, CONNECTION)  # for --topic: serve's --config, --bootstrap-servers and --security-*
    data.add_argument("--since", help="--topic: earliest Kafka timestamp (epoch seconds or ISO-8601)")
    data.add_argument("--until", help="--topic: latest Kafka timestamp, inclusive (epoch seconds or ISO-8601)")
    data.add_argument("--from-offset", type=int, help="--topic: first offset to read, in every partition")
    data.add_argument("--to-offset", type=int, help="--topic: stop before this offset, in every partition")
    data.add_argument("--synthetic", type=int, metavar="STREAMS", help="train on a seeded synthetic fleet instead")
    data.add_argument("--synthetic-events", type=int, default=2000, help="events per synthetic stream")
    data.add_argument("--validation-fraction", type=float, default=0.2, help="last share of each stream's time")
    data.add_argument("--min-events", type=int, default=8, help="leave out streams with fewer events")
    data.add_argument(
        "--min-validation-steps",
        type=int,
        default=100,
        help="refuse to train when the validation split has fewer steps (the model could not be judged); 0 allows any",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="model directory (a versioned store: the model goes into OUT/<version>/, then OUT/current points at it)",
    )
    parser.add_argument(
        "--model-version", help="version name, also its directory (default: creation time + weights digest)"
    )
    parser.add_argument(
        "--skip-if-trained",
        action="store_true",
        help="exit 0 without training when OUT already serves a model (a one-shot train step before serve: "
        "deploy/docker/compose.yaml)",
    )
    parser.add_argument(
        "--replace-incompatible",
        action="store_true",
        help="move OUT/current to a model whose state layout differs (a service on that model_dir could not "
        "restore its state); without it such a model is written beside the current one, not made current",
    )

    defaults = ModelConfig()
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELL_TYPES, default=defaults.cell, help="recurrent cell")
    model.add_argument("--hidden-size", type=int, default=defaults.hidden_size, help="units per recurrent layer")
    model.add_argument("--layers", type=int, default=defaults.num_layers, help="stacked recurrent layers")
    model.add_argument("--norm-window", type=int, default=defaults.norm_window, help="normalisation window (events)")
    model.add_argument("--time-delta-feature", action="store_true", help="add log1p(dt/dt_scale) as an input")
    model.add_argument("--dt-scale", type=float, default=defaults.dt_scale, help="seconds; scale of the dt input")
    model.add_argument(
        "--min-scale", type=float, default=defaults.min_scale, help="floor of the forecast scale (normalised units)"
    )
    model.add_argument(
        "--bidirectional",
        action="store_true",
        help="offline-only non-causal model for `rnnwatch score --bidirectional` (refused by serve and NAB)",
    )
    model.add_argument(
        "--attention-window",
        type=int,
        default=defaults.attention_window,
        metavar="K",
        help="head attends over the last K hidden states of the stream (0 = off)",
    )

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--bptt", type=int, default=64, help="truncated BPTT window (steps)")
    opt.add_argument("--batch-size", type=int, default=32, help="lanes (stream segments) per batch")
    opt.add_argument("--segment-length", type=int, default=1024, help="steps per lane segment")
    opt.add_argument("--warmup", type=int, default=128, help="unscored warm-up steps before later segments")
    opt.add_argument("--epochs", type=int, default=20, help="passes over the training data at most")
    opt.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate, cosine decay to 5%%")
    opt.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm")
    opt.add_argument(
        "--dropout", type=float, default=0.0, help="dropout between stacked layers (--layers >= 2), training only"
    )
    opt.add_argument("--patience", type=int, default=4, help="epochs without validation gain before stopping")
    opt.add_argument("--seed", type=int, default=0, help="initialisation, shuffling and --synthetic data")
    add_train_minutes_flag(opt, None, "stop training after this long (default: --epochs and --patience decide)")
    opt.add_argument("--max-event-steps", type=int, default=None, help="stop after this many training steps")
    opt.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 measured fastest for H=64 on 2 cores)"
    )
    add_progress_flag(opt)


def _load_records(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    from stream.data.eventlog import read_event_logs
    from stream.data.synthetic import generate_fleet

    if args.topic:
        return _replay_topic(args)
    if args.synthetic:
        fleet = generate_fleet(args.synthetic, args.synthetic_events, seed=args.seed)
        records = list(fleet.records())
        return records, {"source": "synthetic", "streams": args.synthetic, "events": len(records)}
    records, summary = read_event_logs(args.logs)
    print(f"read {summary.describe()}", file=sys.stderr)
    source = {
        "source": "event_logs",
        "paths": [str(p) for p in args.logs],
        "rows": summary.rows,
        "accepted": summary.accepted,
        "skipped": dict(summary.skipped),
    }
    return records, source


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _replay_topic(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    from aiokafka.errors import KafkaConnectionError

    from stream.commands.config_flags import config_overrides
    from stream.data.replay import read_topic
    from stream.data.wire import parse_time
    from stream.errors import EventLogError, EventRejectedError, KafkaConnectError, ReplayError
    from stream.service.config import load_config
    from stream.service.connection import describe_failure, held_kafka_errors

    try:
        bounds = {
            "start_time": parse_time(args.since) if args.since else None,
            "end_time": parse_time(args.until) if args.until else None,
            "start_offset": args.from_offset,
            "end_offset": args.to_offset,
        }
    except EventRejectedError as exc:
        raise EventLogError(f"--since/--until must be epoch seconds or ISO-8601 ({exc})") from None
    config = load_config(args.config, overrides=config_overrides(args))  # serve's connection and security settings
    # One line for a failure: aiokafka's own error lines are held, and a connection failure names its cause
    # (a TLS certificate, SASL credentials, no broker) as `rnnwatch serve` does.
    with held_kafka_errors(explained_by=(ReplayError, KafkaConnectError)) as held:
        try:
            replay = read_topic(config.bootstrap_servers, args.topic, config.security.kafka_options(), **bounds)
            records, summary = asyncio.run(replay)
        except ReplayError as exc:
            if isinstance(exc.__cause__, KafkaConnectionError):
                raise KafkaConnectError(describe_failure(config, held.lines)) from exc
            raise
    print(f"replayed {args.topic}: {summary.describe()}", file=sys.stderr)
    if not records:
        raise EventLogError(f"no usable events in topic {args.topic!r} for that range ({summary.describe()})")
    source = {"source": "kafka_topic", "topic": args.topic, **bounds, "rows": summary.rows}
    return records, {**source, "accepted": summary.accepted, "skipped": dict(summary.skipped)}


# TrainResult.stopped in the words of this command's flags
_STOPPED = {
    "max_minutes": "the --train-minutes budget",
    "max_event_steps": "the --max-event-steps budget",
    "early_stopping": "early stopping (validation no better for --patience epochs)",
    "epochs": "--epochs",
}


def format_summary(result: Any, dataset: Any) -> str:
    """The final table: validation NLL and MAE of model vs baselines, plus training throughput."""
    report = result.report
    lines = [
        f"validation: {report.model.steps} steps over {len(dataset.streams)} streams "
        f"(NLL in normalised units, MAE in original units)",
        f"{'forecaster':<24}{'NLL':>10}{'MAE':>12}",
    ]
    rows = [
        ("model", report.model),
        ("persistence", report.persistence),
        (f"ewma (alpha={report.ewma_alpha:g})", report.ewma),
    ]
    lines += [f"{name:<24}{score.nll:>10.4f}{score.mae:>12.5g}" for name, score in rows]
    lines.append(
        f"training: {result.event_steps} event-steps in {result.train_seconds:.1f} s = "
        f"{result.throughput:,.0f} event-steps/s; best epoch {result.best_epoch}, stopped by "
        f"{_STOPPED.get(result.stopped, result.stopped)}"
    )
    if result.history:
        lines.append(format_history(result.history))
    return "\n".join(lines)


def format_history(history: Any, most: int = 12) -> str:
    """The per-epoch train and validation NLL in one line (what the progress bars showed while they ran; all of
    it is in model.json's ``training.history``): the first and last epochs when there are more than ``most``."""
    shown = list(history) if len(history) <= most else [*history[: most // 2], None, *history[-most // 2 :]]
    cells = [
        "..." if h is None else f"{int(h['epoch'])}: {h['train_nll']:.3f}/{h['validation_nll']:.3f}" for h in shown
    ]
    return "epochs (train/validation NLL): " + ", ".join(cells)


def _layout_change(out: Path, config: ModelConfig) -> str | None:
    """Why making ``config`` the current model of ``out`` would strand a service's state, or None if it would not.

    A service serving ``out`` refuses such a model on reload, and after a restart could not restore the
    changelog it wrote with the old one.
    """
    from rnncore.errors import ArtifactError
    from rnncore.model.artifact import load_artifact

    try:
        old = load_artifact(out).config
    except ArtifactError:
        return None  # nothing usable there to protect
    if old.same_state_layout(config):
        return None
    return (
        f"{out} serves a {old.cell} H={old.hidden_size} L={old.num_layers} F={old.n_features} model and this one is "
        f"{config.cell} H={config.hidden_size} L={config.num_layers} F={config.n_features}: a service on that "
        "model_dir would refuse it, and after a restart could not restore its state"
    )


MIN_VALIDATION_STEPS = 100  # below this the validation table is noise


def quality_warnings(result: Any, dataset: Any) -> list[str]:
    """What a user must hear before serving this model: it loses to a trivial forecaster, or was barely checked."""
    report, warnings = result.report, []
    best_name, best = min(
        (("persistence", report.persistence.nll), (f"EWMA (alpha={report.ewma_alpha:g})", report.ewma.nll)),
        key=lambda item: item[1],
    )
    if not report.model.nll < best:
        warnings.append(
            f"the model's validation NLL {report.model.nll:.4f} does not beat {best_name} ({best:.4f}): it forecasts "
            "worse than a trivial baseline; train longer (--epochs, --train-minutes), on more data, or check the logs"
        )
    if dataset.validation_steps < MIN_VALIDATION_STEPS:
        warnings.append(
            f"only {dataset.validation_steps} validation step(s): the table above says little; give more data or a "
            "larger --validation-fraction"
        )
    return warnings


def online_state_bytes(config: ModelConfig) -> int:
    """Bytes of one stream's row in the service's state table (kernel columns, attention ring, calibration)."""
    from rnncore.calibration import ScoringParams, score_schema
    from rnncore.kernels.layout import state_schema

    schema = {**state_schema(config), **score_schema(ScoringParams())}
    return sum(int(math.prod(shape)) * dtype.itemsize for shape, dtype in schema.values())


def describe_state(config: ModelConfig) -> str:
    """One line on what the model costs per stream online (or that it is offline only)."""
    if config.bidirectional:
        return "bidirectional model: offline only (`rnnwatch score --bidirectional`), refused by serve and NAB"
    from rnncore.model.attention import ring_bytes_per_stream

    ring = ring_bytes_per_stream(config)
    detail = f", of which the attention ring (K={config.attention_window}) {ring}" if ring else ""
    return f"online state: {online_state_bytes(config)} bytes per stream{detail}"


def _save_envelope(records: list[Any], directory: Path, metadata: dict[str, Any]) -> tuple[str, Any]:
    """Fit the frozen per-stream envelope (``rnncore.stages.envelope``) on the same normal records and write it before
    ``model.json`` (so a hot reload that sees the new ``model.json`` finds the new envelope); one line on it, and
    the envelope (None when no stream had enough rows)."""
    from rnncore.errors import EnvelopeError
    from rnncore.model.envelope_file import save_envelope
    from rnncore.stages.envelope import EnvelopeParams, fit_envelope
    from rnncore.stages.selffit import SelfFitParams

    online = SelfFitParams()
    try:
        envelope = fit_envelope(records)
    except EnvelopeError as exc:
        p = EnvelopeParams()
        return (
            f"envelope: none ({exc}); every stream fits its own online from its first "
            f"{_self_fit_span(online, p.warmup)} (forecast score alone until then); "
            f"then score >= {p.alarm_score} = beyond what {p.false_alarm:.1%} of its held-out normal events reached"
        ), None
    save_envelope(envelope, directory)
    metadata["envelope"] = envelope.describe()
    p = envelope.params
    return (
        f"envelope: {len(envelope.index)} streams; default threshold: score >= {p.alarm_score} = beyond what "
        f"{p.false_alarm:.1%} of a stream's held-out normal rows reached (the {1 - p.false_alarm:.3f} quantile; "
        f"on new normal data the rate is higher, bench/FLEET_FINDINGS.md); streams not in these logs or with fewer "
        f"than {p.min_events()} rows in them fit their own online from their first {_self_fit_span(online, p.warmup)}"
    ), envelope


def _self_fit_span(online: Any, warmup: int) -> str:
    """How long a stream without a training reference takes to fit its own (``SelfFitParams`` after the envelope's
    ``warmup``), in words: the provisional reference, then the second stage's (later by the events it skips)."""
    first, final = online.frozen_after()
    if final > first:
        return f"{warmup + first} events, refitted over its first {warmup + final} or more"
    return f"{warmup + first} events"


def _serving(out: Path) -> str | None:
    """What ``out`` serves now (its current version, or a plain artifact), or None when it holds no usable model."""
    from rnncore.model.artifact import ArtifactError, read_metadata

    try:
        return f"model version {read_metadata(out).get('version', '?')}"
    except ArtifactError:
        return None


TOPIC_RANGE_FLAGS = ("since", "until", "from_offset", "to_offset")


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags before any data is read or any time spent training, or None."""
    from stream.commands.training_budget import budget_problem

    given = [args.logs is not None, args.synthetic is not None, args.topic is not None]
    if sum(given) != 1:
        return "give exactly one of --logs PATH..., --topic TOPIC or --synthetic STREAMS"
    if args.synthetic is not None and (args.synthetic < 1 or args.synthetic_events < 2):
        return "--synthetic needs at least 1 stream and --synthetic-events at least 2"
    stray = [f"--{name.replace('_', '-')}" for name in TOPIC_RANGE_FLAGS if getattr(args, name) is not None]
    if stray and args.topic is None:
        return f"{', '.join(stray)} select(s) a range of a replayed topic: give --topic TOPIC, or leave them out"
    if (problem := budget_problem(args.train_minutes)) is not None:
        return problem
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} is a file: give a directory (a model store; created if missing)"
    return None


def run(args: argparse.Namespace) -> int:
    """Read, train, save, print the summary; 2 on unusable input, 0 on success."""
    problem = usage_problem(args)
    if problem:
        print(f"rnnwatch train: {problem}", file=sys.stderr)
        return 2
    from rnncore.errors import ModelStoreError
    from rnncore.model.artifact import save_artifact
    from rnncore.model.store import commit_version, incoming_dir
    from stream.commands import progress
    from stream.commands.flag_values import same_named
    from stream.commands.train_prior import store_prior

    if args.skip_if_trained and (serving := _serving(args.out)) is not None:
        print(f"{args.out} already serves {serving}; --skip-if-trained: not training")
        return 0

    try:
        from rnncore.training.bidirectional import train_bidirectional
        from rnncore.training.dataset import build_dataset
        from rnncore.training.trainer import TrainConfig, train
    except ModuleNotFoundError as exc:
        if exc.name not in ("torch", "tqdm"):
            raise
        print(f"rnnwatch train: needs {exc.name}: pip install 'rnnwatch[train]'", file=sys.stderr)
        return 2

    started = time.time()
    try:
        records, source = _load_records(args)
        n_features = len(records[0].values)
        config = ModelConfig(
            n_features=n_features,
            num_layers=args.layers,
            direction="bidirectional" if args.bidirectional else "forward",
            **same_named(args, *MODEL_FLAGS),
        )
        if args.model_version and (args.out / args.model_version).exists():
            raise ModelStoreError(f"{args.out / args.model_version} exists: give another --model-version")
        layout_change = _layout_change(args.out, config)
        dataset = build_dataset(records, config, args.validation_fraction, args.min_events)
        if dataset.validation_steps < args.min_validation_steps:
            print(
                f"rnnwatch train: only {dataset.validation_steps} validation step(s), fewer than "
                f"--min-validation-steps {args.min_validation_steps}: the model could not be judged against "
                "persistence and EWMA; give more data or a larger --validation-fraction (or --min-validation-steps 0)",
                file=sys.stderr,
            )
            return 2
        settings = TrainConfig(
            learning_rate=args.lr,
            max_minutes=args.train_minutes,
            progress=progress.shown(args.no_progress),  # on a terminal only, even behind a captured stderr
            **same_named(args, *TRAIN_FLAGS, *BUDGET_FLAGS),
        )
        with progress.on_terminal():
            result = (train_bidirectional if config.bidirectional else train)(dataset, config, settings)
    except (RnnCoreError, StreamError) as exc:
        print(f"rnnwatch train: {exc}", file=sys.stderr)
        return 2
    metadata: dict[str, Any] = {
        "causal": not config.bidirectional,
        "features": {"n_features": config.n_features, "time_delta_feature": config.time_delta_feature},
        "normalisation": {
            "kind": "causal per-stream running mean/variance, exponential after norm_window events",
            "norm_window": config.norm_window,
            "norm_eps": config.norm_eps,
            "input_clip": config.input_clip,
        },
        "training": {
            "data": {**source, **dataset.summary},
            "settings": dataclasses.asdict(settings),
            "history": result.history,
            "best_epoch": result.best_epoch,
            "stopped": result.stopped,
            "event_steps": result.event_steps,
            "train_seconds": result.train_seconds,
            "wall_seconds": time.time() - started,
        },
        "validation": result.report.as_dict(),
        "validation_loss": _finite_or_none(result.report.model.nll),
    }
    if not config.bidirectional:
        metadata["state_bytes_per_stream"] = online_state_bytes(config)
    if args.model_version:
        metadata["version"] = args.model_version
    warnings = quality_warnings(result, dataset)
    if warnings:
        metadata["warnings"] = warnings
    incoming = incoming_dir(args.out)
    try:
        envelope_line, prior_line = "", ""
        if not config.bidirectional:
            envelope_line, envelope = _save_envelope(records, incoming, metadata)
            prior_line = store_prior(result.weights, dataset, envelope, metadata)
        path = save_artifact(incoming, result.weights, metadata)
        version = json.loads(path.read_text())["version"]
        make_current = layout_change is None or args.replace_incompatible
        target = commit_version(args.out, incoming, version, make_current=make_current)
    except RnnCoreError as exc:
        print(f"rnnwatch train: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    print(format_summary(result, dataset))
    if envelope_line:
        print(envelope_line)
    if prior_line:
        print(prior_line)
    for warning in warnings:
        print(f"rnnwatch train: warning: {warning}", file=sys.stderr)
    print(describe_state(config))
    if make_current:
        print(f"wrote {target} (model version {version}); {args.out}/current -> {version}")
    else:
        print(f"wrote {target} (model version {version}); {args.out}/current left where it was")
        print(
            f"rnnwatch train: warning: not made current: {layout_change}. Serve it from {target} with a new "
            f"changelog_topic, or move the pointer with `rnnwatch model use {args.out} {version}` (or train with "
            "--replace-incompatible)",
            file=sys.stderr,
        )
    return 0
