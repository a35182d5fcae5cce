"""Progress bars (``stream.commands.progress``): drawn on a terminal's stderr only, cut to its width, with the time
left; nothing on stdout, nothing on a pipe, nothing without tqdm; a command run with its output captured
(`evaluate`, `bench nab`) still draws its bars on the terminal behind the capture.

The terminal is a real pseudo-terminal of a set width (``os.openpty``), so tqdm measures it as it would a window.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import select
import struct
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.cli import main
from stream.commands import progress, score
from stream.evaluation.product_path import run_cli

COLUMNS = 60


class Terminal:
    """A pseudo-terminal ``COLUMNS`` wide: ``file`` is its writing end (a TTY), ``read()`` what reached it."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
        self.file: TextIO = open(slave, "w", buffering=1)  # noqa: SIM115 - closed by close()

    def read(self) -> str:
        self.file.flush()
        chunks = []
        while select.select([self.master], [], [], 0.05)[0]:
            chunks.append(os.read(self.master, 65536))
        return b"".join(chunks).decode(errors="replace")

    def close(self) -> None:
        self.file.close()
        os.close(self.master)


@pytest.fixture
def tty() -> Iterator[Terminal]:
    """A terminal; a test makes it the process's stderr in its body (pytest's capture sets sys.stderr between a
    test's setup and its call)."""
    terminal = Terminal()
    yield terminal
    terminal.close()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    save_artifact(directory, ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=3))
    return directory


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    rows = (json.dumps({"key": f"s{i % 3}", "time": i, "value": 1.0 + i % 7}) for i in range(3000))
    path.write_text("\n".join(rows) + "\n")
    return path


def _drawn(text: str) -> list[str]:
    """The bar's frames: what was drawn between carriage returns, blanks left out."""
    return [frame for frame in text.replace("\n", "\r").split("\r") if frame.strip()]


def test_a_bar_on_a_terminal_fits_its_width_and_says_the_time_left(
    tty: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", tty.file)
    with progress.bar(1000, "scoring", "event") as shown:
        shown.update(500)
        shown.refresh()  # tqdm redraws at most every 0.5 s; draw this state now
    frames = _drawn(tty.read())
    assert any("scoring" in f and "500/1.00k" in f and "<00:00" in f for f in frames), frames  # elapsed<remaining
    assert all(len(f) <= COLUMNS for f in frames), frames


def test_no_bar_on_a_pipe_without_tqdm_or_when_quiet(monkeypatch: pytest.MonkeyPatch, tty: Terminal) -> None:
    pipe = io.StringIO()  # not a TTY
    monkeypatch.setattr(sys, "stderr", pipe)
    assert not progress.shown()
    with progress.bar(10, "scoring", "event") as shown:
        shown.update(10)
    assert pipe.getvalue() == ""

    monkeypatch.setattr(sys, "stderr", tty.file)
    assert progress.shown() and not progress.shown(disabled=True)
    with progress.quiet():
        assert not progress.shown()
    with progress.quiet(False):
        assert progress.shown()
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if not installed: `import tqdm` fails
    assert not progress.shown()
    with progress.bar(10, "scoring", "event") as shown:
        shown.update(10)
        shown.set_postfix_str("nothing")
    assert tty.read() == ""


def test_score_draws_on_stderr_only_and_not_on_a_pipe(
    tmp_path: Path,
    model: Path,
    log: Path,
    tty: Terminal,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stderr", tty.file)
    argv = ["score", "--logs", str(log), "--model-dir", str(model), "--out", str(tmp_path / "o.jsonl")]
    assert main([*argv, "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scored 3000 events") and out.count("\n") == 1  # stdout: the summary, no bar
    assert any("scoring" in f and "event" in f for f in _drawn(tty.read()))

    assert main([*argv, "--no-progress"]) == 0
    assert tty.read() == ""


def test_a_captured_command_draws_on_the_terminal_behind_the_capture(
    tmp_path: Path, model: Path, log: Path, tty: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `evaluate` and `bench nab` do: run `score` (and `train`) in-process with their output captured."""
    monkeypatch.setattr(sys, "stderr", tty.file)
    argv = ["--logs", str(log), "--model-dir", str(model), "--out", str(tmp_path / "o.jsonl"), "--batch-size", "64"]
    _, captured = run_cli(score.add_arguments, score.run, argv)
    assert captured.startswith("scored 3000 events") and "\r" not in captured and "scoring" not in captured
    assert any("scoring" in f for f in _drawn(tty.read()))

    with progress.quiet():  # evaluate's and bench's --no-progress
        run_cli(score.add_arguments, score.run, argv)
    assert tty.read() == ""


@pytest.mark.timeout(180)
def test_train_under_a_capture_draws_its_epoch_bars_on_the_terminal(
    tmp_path: Path, tty: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", tty.file)
    from stream.commands import train

    argv = ["--synthetic", "2", "--synthetic-events", "400", "--out", str(tmp_path / "m"), "--epochs", "2"]
    argv += ["--hidden-size", "8", "--min-validation-steps", "0"]
    _, captured = run_cli(train.add_arguments, train.run, argv)
    assert "training:" in captured and "epoch 1/2" not in captured and "\r" not in captured
    assert any("epoch 1/2" in f for f in _drawn(tty.read()))
