"""Issue 16: the short-experiment benchmark, seeded pump testbeds whose labelled files are ~1,000-1,300 rows at 1 s
with one sustained fault each (the hidden multivariate hold-out's shape), scored by the product path two ways
(each file trained on its own normal head, `rnnwatch evaluate`; trained on a separate anomaly-free recording, every
file self-fitting its envelope), with a Hotelling T² and a rolling z-score in the same run; one RESULT line.

    nice -n 10 .venv/bin/python bench/experiments.py [--split report] [--seeds 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from stream.evaluation.rigs.experiment_runner import add_experiment_arguments, run_experiments


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run the benchmark in a temporary directory, print the tables and the RESULT line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_experiment_arguments(parser)
    parser.add_argument("--keep", type=Path, default=None, help="write the testbeds here instead of a temp dir")
    args = parser.parse_args(argv)
    if args.keep is not None:
        text, _ = run_experiments(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="rnnwatch-experiments-") as tmp:
            text, _ = run_experiments(args, Path(tmp))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
