"""`rnnwatch broker start|stop|status`: the local development Kafka broker (deploy/kafka/broker.sh).

Works from a checkout and from an installed package (the scripts travel in the wheel; jars and run directories
then live in ~/.cache/rnnwatch/kafka). Exit codes: 0 done, 1 the broker could not be fetched, started or stopped
(one line from broker.sh saying why), or `status` found none running (one line on stderr, stdout empty).
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
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="start: listen on this loopback port (default: a free one, or $RNNWATCH_KAFKA_PORT); a running "
        "broker keeps its own",
    )


def run(args: argparse.Namespace) -> int:
    """Start (printing the bootstrap address), stop, or print the status of the broker."""
    if args.port is not None and (args.action != "start" or not 1 <= args.port <= 65535):
        print(f"rnnwatch broker {args.action}: --port takes 1..65535 and goes with start only", file=sys.stderr)
        return 2
    try:
        broker = LocalBroker(run_dir=args.run_dir, port=args.port)
        if args.action == "start":
            print(broker.start())
        elif args.action == "stop":
            broker.stop()
        else:
            address = broker.status()
            if address is None:  # stdout stays empty, so BOOT=$(rnnwatch broker status) is empty too
                print(
                    f"rnnwatch broker status: no broker running in {broker.run_dir}; `rnnwatch broker start` starts "
                    "one (with the same --run-dir)",
                    file=sys.stderr,
                )
                return 1
            print(address)
    except BrokerError as error:
        print(f"rnnwatch broker {args.action}: {error}", file=sys.stderr)
        return 1
    return 0
