"""Issue 16: the rig benchmark, seeded pump rigs (8 coupled sensors, labelled faults lasting minutes) scored by
`rnnwatch evaluate`'s path (train on each rig's normal file, score its test file, CLI defaults), with a rolling
z-score and a Hotelling T² of raw values in the same run; one RESULT line.

    nice -n 10 flock /tmp/rnnwatch-bench.lock .venv/bin/python bench/rigs.py [--split report] [--seeds 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from stream.evaluation.rigs.runner import add_rig_arguments, run_rigs


def main(argv: list[str] | None = None) -> int:
    """Parse the rig flags, run the benchmark in a temporary directory, print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_rig_arguments(parser)
    parser.add_argument("--keep", type=Path, default=None, help="write the sites here instead of a temp dir")
    args = parser.parse_args(argv)
    if args.keep is not None:
        text, _ = run_rigs(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="rnnwatch-rigs-") as tmp:
            text, _ = run_rigs(args, Path(tmp))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
