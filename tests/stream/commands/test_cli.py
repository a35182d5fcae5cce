"""CLI conventions: --version, defaults in --help, and a one-line error where an extra is missing."""

from __future__ import annotations

import builtins
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from stream.cli import main


def test_version_names_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"rnnwatch {metadata.version('rnnwatch')}"


def test_help_shows_defaults_but_not_empty_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "units per recurrent layer (default: 64)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_train_without_torch_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch.") or name.startswith("rnncore.training"):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    assert main(["train", "--synthetic", "2", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'rnnwatch[train]'" in err and "Traceback" not in err


def test_every_flag_of_every_command_says_what_it_does() -> None:
    import argparse

    from stream.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    bare = [
        (name, action.option_strings[0])
        for name, parser in commands.items()
        for action in parser._actions
        if action.option_strings and action.help != argparse.SUPPRESS and not (action.help or "").strip()
    ]
    assert not bare, bare
