"""Progress bars for long work (training, scoring, benchmarks): one rule for every command.

A bar is drawn with tqdm on stderr, and only when stderr is a terminal: a pipe, a file or CI gets no
carriage-return noise, and stdout (results, ``RESULT`` lines, JSON Lines) never gets a byte of it. It is sized
to the window as the window changes (``dynamic_ncols``) and shows the time left. Without tqdm (it comes with the
``train`` extra) there is no bar and nothing fails.

A command that another runs in-process with its output captured (``stream.evaluation.product_path.run_cli``)
prints into a ``Captured`` buffer; its bars still reach the terminal behind that buffer, so `rnnwatch evaluate`
and `rnnwatch bench nab` show the training and scoring bars of the `rnnwatch train` and `rnnwatch score` they
run. ``quiet()`` turns every bar off for a command's ``--no-progress``, the ones it runs included.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Iterator
from typing import Any, Protocol, TextIO

_quiet = 0  # > 0 inside quiet(): no bar anywhere


class Bar(Protocol):
    """What a command does with a bar: advance it, say what it is on."""

    def update(self, n: float = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...


class _NoBar:
    """The bar when none is drawn: every call does nothing."""

    def update(self, n: float = 1) -> None:
        return None

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        return None


class Captured(io.StringIO):
    """What a command run in-process prints (stdout and stderr together); ``terminal`` is the stderr it
    replaced, where progress bars still go."""

    def __init__(self, terminal: TextIO) -> None:
        super().__init__()
        self.terminal = terminal


def add_progress_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-progress``: the same flag, the same words, in every command that draws a bar."""
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (none is drawn anyway when stderr is not a terminal)",
    )


def terminal() -> TextIO | None:
    """The stream a bar may draw on: stderr, or the stderr behind a ``Captured`` one; None when it is no terminal."""
    stream: Any = sys.stderr
    while isinstance(stream, Captured):
        stream = stream.terminal
    try:
        return stream if stream is not None and stream.isatty() else None
    except (AttributeError, ValueError):  # no isatty, or closed
        return None


def tqdm_class() -> Any:
    """tqdm's bar class, or None when tqdm is not installed (it comes with the ``train`` extra)."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return None
    return tqdm


def shown(disabled: bool = False) -> bool:
    """Whether a bar would be drawn now: not ``disabled`` (``--no-progress``), not ``quiet()``, stderr a terminal,
    tqdm installed."""
    return not disabled and not _quiet and terminal() is not None and tqdm_class() is not None


def bar(total: float | None, desc: str, unit: str, *, disabled: bool = False, eta: bool = True) -> Any:
    """A context-managed bar of ``total`` ``unit``\\s (tqdm's, or one that draws nothing: see ``shown``); it goes
    when done. ``eta=False`` for a bar over unequal stages (detectors, files of any size), where time left
    extrapolated from the first ones would mislead: it shows the count and the time spent."""
    stream, tqdm = terminal(), tqdm_class()
    if not shown(disabled) or stream is None:
        return contextlib.nullcontext(_NoBar())
    options: dict[str, Any] = {}
    if not eta:
        options["bar_format"] = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}]{postfix}"
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream,
        dynamic_ncols=True,
        leave=False,
        mininterval=0.5,
        unit_scale=unit == "event",
        **options,
    )


@contextlib.contextmanager
def on_terminal() -> Iterator[None]:
    """Inside, ``sys.stderr`` is the terminal behind a ``Captured`` stderr, for code that draws its own tqdm bar
    on ``sys.stderr`` (the trainer's); outside a capture it changes nothing."""
    stream = terminal()
    if stream is None or stream is sys.stderr:
        yield
        return
    with contextlib.redirect_stderr(stream):
        yield


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Inside (when ``enabled``), no bar is drawn: a command's ``--no-progress`` for the commands it runs too."""
    global _quiet
    _quiet += int(enabled)
    try:
        yield
    finally:
        _quiet -= int(enabled)
