"""Run a CLI command (`rnnwatch train`, `rnnwatch score`) in process through its own parser and ``run``.

Benchmarks call this instead of re-implementing a command, so the defaults and the code they measure are
exactly what a user gets from the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable


class ProductPathError(RuntimeError):
    """A CLI command refused the benchmark's input; the message carries the command's own output."""


def run_cli(
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str],
) -> tuple[argparse.Namespace, str]:
    """Parse ``argv`` with a command's own parser and run it, capturing what it prints; a non-zero exit raises
    :class:`ProductPathError` with the tail of that output."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(argv)
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = run(args)
    if code != 0:
        raise ProductPathError(f"{argv[0]}... exited {code}: {output.getvalue().strip()[-800:]}")
    return args, output.getvalue()
