"""The training time budget has one name, ``--train-minutes``, in every command that trains; the earlier spellings
(``--max-minutes``, ``--train-seconds`` in seconds) still work, hidden from ``--help``; bad values: test_bad_usage."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stream.cli import build_parser, main
from stream.commands import bench

TRAINING = {"train": ["--synthetic", "2", "--out", "m"], "evaluate": ["--data", "d", "--label-column", "y"]}
TRAINING |= {"bench": ["nab"], "demo": []}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(TRAINING))
def test_every_training_command_takes_train_minutes_and_the_old_names(command: str) -> None:
    parser, base = _subparsers()[command], TRAINING[command]
    assert parser.parse_args([*base, "--train-minutes", "2.5"]).train_minutes == 2.5
    assert parser.parse_args([*base, "--max-minutes", "2.5"]).train_minutes == 2.5
    assert parser.parse_args([*base, "--train-seconds", "90"]).train_minutes == 1.5
    assert parser.parse_args(base).train_minutes == (1.0 if command == "demo" else None)


def test_help_shows_one_budget_flag_per_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command in TRAINING:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert text.count("--train-minutes MIN") == 2, command  # usage line and the flag's help
        assert "--max-minutes" not in text and "--train-seconds" not in text, command


def test_no_command_spells_a_training_budget_another_way() -> None:
    for command, parser in _subparsers().items():
        for action in parser._actions:
            shown = [o for o in action.option_strings if action.help != argparse.SUPPRESS]
            if action.dest == "train_minutes" and shown:
                assert shown == ["--train-minutes"], (command, shown)
            else:
                assert not {"--max-minutes", "--train-seconds"} & set(shown), (command, shown)


def test_bench_hands_its_runners_the_budget_in_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = _subparsers()["bench"]
    args = parser.parse_args(["nab", "--data", str(tmp_path), "--train-minutes", "0.5"])
    assert bench.run(args) == 2  # not a NAB checkout: refused before any work
    assert args.train_seconds == 30.0 and "not a NAB checkout" in capsys.readouterr().err
    args = parser.parse_args(["nab", "--data", str(tmp_path)])
    bench.run(args)
    assert args.train_seconds is None
