"""Issue 16: the product path (`rnnwatch train` then `rnnwatch score`, default settings) on seeded synthetic
fleets, with a rolling z-score and Hotelling T² baseline in the same run; the same as `rnnwatch bench fleet`.

    flock /tmp/rnnwatch-bench.lock .venv/bin/python bench/fleet.py [--split report] [--seeds 8]
"""

from __future__ import annotations

import argparse
import sys

from stream.evaluation.fleet.runner import add_fleet_arguments, run_fleet


def main(argv: list[str] | None = None) -> int:
    """Parse the fleet flags and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_fleet_arguments(parser)
    parser.add_argument("--train-seconds", type=float, default=None, help="training budget (default: train's own)")
    return run_fleet(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
