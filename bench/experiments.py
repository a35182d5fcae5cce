"""Issue 16: the short-experiment benchmark, seeded pump testbeds whose labelled files are ~1,000-1,300 rows at 1 s
with one sustained fault each (the hidden multivariate hold-out's shape), scored by the product path two ways
(each file trained on its own normal head, `rnnwatch evaluate`; trained on a separate anomaly-free recording, every
file self-fitting its envelope), with a Hotelling T² and a rolling z-score in the same run; one RESULT line.

    nice -n 10 .venv/bin/python bench/experiments.py [--split report] [--seeds 8]
"""

from __future__ import annotations

import sys

from stream.evaluation.rigs.experiment_runner import add_experiment_arguments, run_experiments
from stream.evaluation.rigs.runner import script_main


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (in a temporary directory unless ``--keep DIR``), print the tables and the RESULT line."""
    return script_main("experiments", (__doc__ or "").splitlines()[0], add_experiment_arguments, run_experiments, argv)


if __name__ == "__main__":
    sys.exit(main())
