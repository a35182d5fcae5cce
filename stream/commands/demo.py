"""`rnnwatch demo`: local broker + synthetic sensor fleet + the service, with live progress and a report.

The README's first command. Exit codes: 0 done, 1 the demo failed (one line says why), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

MIN_HISTORY = 500  # EnvelopeParams.min_events() (400) plus the validation split train needs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: the fleet, its pace, the broker, training and the service's settings the demo exposes."""
    from stream.commands.config_flags import add_setting_flag
    from stream.commands.training_budget import add_train_minutes_flag

    parser.add_argument("--streams", type=int, default=100, help="sensors in the fleet (default 100)")
    parser.add_argument("--events-per-stream", type=int, default=1000, help="events each sensor sends (default 1000)")
    parser.add_argument(
        "--history-events",
        type=int,
        default=2000,
        help="clean history per sensor before the live part, what the model trains on (default 2000)",
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s the whole fleet sends (default 2000)")
    parser.add_argument("--partitions", type=int, default=4, help="input topic partitions (default 4)")
    parser.add_argument("--out", type=Path, default=Path(".cache/demo"), help="model, plot and summary go here")
    parser.add_argument("--bootstrap-servers", default=None, help="use this broker instead of starting a local one")
    add_train_minutes_flag(parser, 1.0, "the demo model's `rnnwatch train --train-minutes`")
    parser.add_argument("--retrain", action="store_true", help="train a new demo model even if one is cached")
    add_setting_flag(parser, "anomaly_threshold", "--threshold", dest="threshold")
    add_setting_flag(parser, "guarantee")
    parser.add_argument("--seed", type=int, default=1, help="fleet seed (the model trains on this fleet's history)")
    parser.add_argument("--verbose", action="store_true", help="show the service's own log lines")


def run(args: argparse.Namespace) -> int:
    """Validate the flags, then run the demo; failures are one line on stderr."""
    from stream.commands.flag_values import same_named
    from stream.demo.runner import DemoSettings, run_demo
    from stream.errors import DemoError, StreamError

    if not args.verbose:  # the progress line and the report are the demo's output; the service logs on demand
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if args.streams < 1 or args.events_per_stream < 50 or args.rate <= 0 or args.partitions < 1:
        print(
            "rnnwatch demo: need --streams >= 1, --events-per-stream >= 50, --rate > 0, --partitions >= 1",
            file=sys.stderr,
        )
        return 2
    if not 0.0 <= args.threshold <= 1.0 or not args.train_minutes > 0:
        print("rnnwatch demo: --anomaly-threshold must be in [0, 1] and --train-minutes > 0", file=sys.stderr)
        return 2
    if args.history_events < MIN_HISTORY:
        print(
            f"rnnwatch demo: --history-events {args.history_events} is too short to learn what normal is: each "
            f"stream's envelope needs {MIN_HISTORY} (its warm-up, a fit and a held-out part); give more",
            file=sys.stderr,
        )
        return 2
    fleet = same_named(args, "streams", "events_per_stream", "history_events", "rate", "partitions")
    run_as = same_named(args, "train_minutes", "retrain", "threshold", "guarantee", "seed")
    settings = DemoSettings(out_dir=args.out, bootstrap=args.bootstrap_servers, **fleet, **run_as)
    try:
        return run_demo(settings)
    except (DemoError, StreamError) as error:
        print(f"rnnwatch demo: {error}", file=sys.stderr)
        return 1
