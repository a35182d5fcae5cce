"""`rnnwatch broker start|stop|status`: the local development Kafka broker from deploy/kafka."""

from __future__ import annotations

import argparse

from stream.local_broker import LocalBroker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--run-dir", default=None, help="broker run directory (default deploy/kafka/.run/default)")


def run(args: argparse.Namespace) -> int:
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
    return 0
