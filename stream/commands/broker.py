"""`rnnwatch broker start|stop|status`: the local development Kafka broker (deploy/kafka/broker.sh).

Works from a checkout and from an installed package (the scripts travel in the wheel; jars and run directories
then live in ~/.cache/rnnwatch/kafka). Exit codes: 0 done, 1 the broker could not be fetched, started or stopped
(one line from broker.sh saying why), or `status` found none running.
"""

from __future__ import annotations

import argparse
import sys

from stream.errors import BrokerError
from stream.local_broker import LocalBroker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: the action and the broker's run directory."""
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument(
        "--run-dir",
        default=None,
        help="broker run directory (default: deploy/kafka/.run/default in a checkout, "
        "~/.cache/rnnwatch/kafka/.run/default when installed; or $RNNWATCH_KAFKA_RUN_DIR)",
    )


def run(args: argparse.Namespace) -> int:
    """Start (printing the bootstrap address), stop, or print the status of the broker."""
    try:
        broker = LocalBroker(run_dir=args.run_dir)
        if args.action == "start":
            print(broker.start())
        elif args.action == "stop":
            broker.stop()
        else:
            address = broker.status()
            if address is None:
                print("not running")
                return 1
            print(address)
    except BrokerError as error:
        print(f"rnnwatch broker {args.action}: {error}", file=sys.stderr)
        return 1
    return 0
