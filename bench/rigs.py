"""Issue 16: the rig benchmark, seeded pump rigs (8 coupled sensors, labelled faults lasting minutes) scored by
`rnnwatch evaluate`'s path (train on each rig's normal file, score its test file, CLI defaults), with a rolling
z-score and a Hotelling T² of raw values in the same run; one RESULT line.

    nice -n 10 flock /tmp/rnnwatch-bench.lock .venv/bin/python bench/rigs.py [--split report] [--seeds 8]
"""

from __future__ import annotations

import sys

from stream.evaluation.rigs.runner import add_rig_arguments, run_rigs, script_main


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (in a temporary directory unless ``--keep DIR``), print the tables and the RESULT line."""
    return script_main("rigs", (__doc__ or "").splitlines()[0], add_rig_arguments, run_rigs, argv)


if __name__ == "__main__":
    sys.exit(main())
