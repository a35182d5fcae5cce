"""Every sub-command's bad-usage paths: a non-zero exit, no traceback, and one line naming the problem and the fix.

Each case runs `stream.cli.main` in-process on argv with placeholders ({model}, {log}, {dead}, ...) filled from a
scratch directory; ``{dead}`` is a local port nothing listens on (refused at once, so the Kafka cases are quick).
The expected words are one for the problem and one for the fix; the error may follow a progress line
(``PROGRESS``). `test_every_command_is_covered` keeps the table
complete when a command is added; one subprocess test checks the real console entry point prints the same line.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.cli import COMMANDS, main

HELP = "--help` lists every flag"  # what a parser error ends with
TRAIN_ONE = "rnnwatch train --synthetic 20 --out"
KAFKA = "check bootstrap_servers"
PROGRESS = ("read ",)  # `rnnwatch train` says what it read before it judges it

# (argv, exit code, words the one line must hold: the problem, then the fix)
CASES: list[tuple[str, int, tuple[str, ...]]] = [
    # the top level
    ("", 2, ("required: COMMAND", HELP)),
    ("bogus", 2, ("invalid choice: 'bogus'", "choose from 'broker'")),
    ("--log-level loud score", 2, ("--log-level: invalid choice", "choose from 'DEBUG'")),
    # score
    ("score", 2, ("required: --logs, --model-dir/--model, --out", HELP)),
    ("score --logs {log} --model-dir {model}", 2, ("required: --out", HELP)),
    ("score --logs {tmp}/nope.jsonl --model-dir {model} --out {tmp}/o.jsonl", 2, ("nope.jsonl does not exist",)),
    ("score --logs {log} --model-dir {tmp}/nope --out {tmp}/o.jsonl", 2, ("nope does not exist", TRAIN_ONE)),
    ("score --logs {log} --model-dir {log} --out {tmp}/o.jsonl", 2, ("is a file", "rnnwatch train --out` wrote")),
    ("score --logs {log} --model-dir {tmp}/empty --out {tmp}/o.jsonl", 2, ("holds no model", TRAIN_ONE)),
    ("score --logs {log2} --model-dir {model} --out {tmp}/o.jsonl", 2, ("2 value(s)", "model trained on such logs")),
    ("score --logs {log} --model-dir {model} --out {tmp}/o.parquet", 2, (".parquet is not a format", "write .csv")),
    ("score --logs {log} --model-dir {model} --out {tmp}/o.json", 2, ("JSON Lines", "name it .jsonl")),
    ("score --logs {no_key_csv} --model-dir {model} --out {tmp}/o.csv", 2, ("naming 'key' and 'time'", "name the")),
    ("score --logs {log} --model-dir {model} --out {tmp}/o.jsonl --anomaly-threshold abc", 2, ("invalid float",)),
    ("score --logs {log} --model {tmp}/nope --out {tmp}/o.jsonl --threshold 0.5", 2, ("nope does not exist",)),
    ("score --logs {log} --model-dir {model} --out {tmp}/o.jsonl --anomaly-threshold 2", 2, ("must be in [0, 1]",)),
    (
        "score --logs {log} --model-dir {model} --out {tmp}/o.jsonl --scoring-pipeline x",
        2,
        ("invalid choice", "detector"),
    ),
    (
        "score --logs {log} --model-dir {model} --out o.jsonl --bidirectional --scoring-pipeline seasonal",
        2,
        ("offline", "takes no --scoring-pipeline"),
    ),  # fmt: skip
    (
        "score --logs {log} --model-dir {model} --out {tmp}/o.jsonl --bidirectional",
        2,
        ("needs a bidirectional model", "without --bidirectional"),
    ),  # fmt: skip
    ("score --logs {log} --model-dir {model} --out {tmp}/o.jsonl --plot {tmp}/p.jpg", 2, ("--plot takes a .png",)),
    ("score --logs {log} --model-dir {model} --out {tmp}/o.jsonl --warmup-events -5", 2, ("warmup_events", "[0,")),
    ("score --logs {log} --model-dir {model} --out {tmp}/o.jsonl --max-streams 0", 2, ("max_streams", ">= 1")),
    # train
    ("train", 2, ("required: --out", HELP)),
    ("train --out {tmp}/m", 2, ("give exactly one of --logs", "--synthetic")),
    ("train --logs {log} --synthetic 2 --out {tmp}/m", 2, ("give exactly one of --logs", "--synthetic")),
    ("train --synthetic 0 --out {tmp}/m", 2, ("--synthetic needs at least 1",)),
    ("train --logs {tmp}/nope.jsonl --out {tmp}/m", 2, ("nope.jsonl does not exist",)),
    ("train --synthetic 2 --out {log}", 2, ("is a file", "give a directory")),
    ("train --synthetic 2 --out {tmp}/m --since 2020", 2, ("--since", "give --topic")),
    ("train --synthetic 2 --out {tmp}/m --cell bogus", 2, ("--cell: invalid choice", "'gru'")),
    ("train --synthetic 2 --out {tmp}/m --hidden-size abc", 2, ("--hidden-size: invalid int", HELP)),
    ("train --synthetic 2 --out {tmp}/m --hidden-size 0", 2, ("hidden_size must be in 1..1024",)),
    ("train --synthetic 2 --out {tmp}/m --validation-fraction 2", 2, ("validation_fraction must be in [0, 1)",)),
    ("train --synthetic 2 --out {tmp}/m --epochs 0", 2, ("epochs >= 1",)),
    ("train --logs {log} --out {tmp}/m", 2, ("only 10 validation step(s)", "give more data")),
    ("train --topic t --bootstrap-servers {dead} --out {tmp}/m", 2, ("cannot connect to Kafka", KAFKA)),
    ("train --topic t --out {tmp}/m --security-protocol SASL_PLAINTEXT", 2, ("SASL needs sasl_username",)),
    (
        "train --topic t --out {tmp}/m --security-protocol SSL --security-ssl-cafile {tmp}/no.pem",
        2,
        ("ssl_cafile", "does not exist"),
    ),  # fmt: skip
    ("train --synthetic 2 --out {tmp}/m --train-minutes 0", 2, ("--train-minutes must be > 0",)),
    ("train --synthetic 2 --out {tmp}/m --max-minutes -1", 2, ("--train-minutes must be > 0",)),  # the old name
    # serve (its errors are log lines: --log-level WARNING leaves the INFO lines of a start out)
    ("serve", 2, ("no model", "pass --model-dir")),
    ("serve --model-dir {tmp}/nope", 2, ("nope does not exist", TRAIN_ONE)),
    ("serve --model-dir {log}", 2, ("is a file", "rnnwatch train --out` wrote")),
    ("serve --model-dir {model} --config {tmp}/nope.toml", 2, ("config file", "does not exist")),
    ("serve --model-dir {model} --config {bad_toml}", 2, ("is not valid TOML", "line 1")),
    ("serve --model-dir {model} --config {unknown_toml}", 2, ("unknown ServiceConfig settings", "inptu_topic")),
    ("serve --model-dir {model} --max-batch-size abc", 2, ("--max-batch-size: invalid int", HELP)),
    ("serve --model-dir {model} --max-batch-size 0", 2, ("max_batch_size must be >= 1",)),
    ("serve --model-dir {model} --guarantee bogus", 2, ("--guarantee: invalid choice", "exactly_once")),
    ("serve --model-dir {model} --anomaly-threshold 2", 2, ("anomaly_threshold must be in [0, 1]",)),
    ("serve --model-dir {model} --input-topic x --output-topic x", 2, ("topics must differ",)),
    ("serve --model-dir {model} --security-protocol SASL_PLAINTEXT", 2, ("SASL needs sasl_username",)),
    (
        "serve --model-dir {model} --security-protocol SSL --security-ssl-cafile {tmp}/no.pem",
        2,
        ("ssl_cafile", "does not exist"),
    ),  # fmt: skip
    ("serve --model-dir {model} --security-sasl-password x", 2, ("unrecognized arguments", HELP)),
    ("serve --model {model}", 2, ("unrecognized arguments: --model", HELP)),  # no abbreviations
    (
        "--log-level WARNING serve --model-dir {model} --bootstrap-servers {dead} --metrics-port 0",
        1,
        ("cannot connect to Kafka", KAFKA),
    ),  # fmt: skip
    # topics
    ("topics", 2, ("required: action", HELP)),
    ("topics create --partitions 0", 2, ("--partitions", "must be >= 1")),
    ("topics create --config {bad_toml}", 2, ("is not valid TOML",)),
    ("topics create --bootstrap-servers {dead}", 1, ("cannot connect to Kafka", KAFKA)),
    # send
    ("send", 2, ("one of the arguments --logs --synthetic is required", HELP)),
    ("send --logs {log} --synthetic 2", 2, ("not allowed with argument --logs", HELP)),
    ("send --logs {tmp}/nope.jsonl", 2, ("nope.jsonl does not exist",)),
    ("send --synthetic 2 --rate -1", 2, ("--rate must be >= 0",)),
    ("send --synthetic 0", 2, ("--synthetic >= 1",)),
    ("send --synthetic 2 --bootstrap-servers {dead}", 1, ("cannot connect to Kafka", KAFKA)),
    # tail
    ("tail --count -1", 2, ("--count and --idle-seconds must be >= 0",)),
    ("tail --config {tmp}/nope.toml", 2, ("config file", "does not exist")),
    ("tail --bootstrap-servers {dead}", 1, ("cannot connect to Kafka", KAFKA)),
    # model
    ("model", 2, ("required: action, model_dir", HELP)),
    ("model bogus {model}", 2, ("invalid choice: 'bogus'", "'list'")),
    ("model list {tmp}/nope", 2, ("nope does not exist", TRAIN_ONE)),
    ("model list {log}", 2, ("is a file", "rnnwatch train --out` wrote")),
    ("model use {model}", 2, ("give the VERSION", "rnnwatch model list")),
    ("model use {tmp}/nope", 2, ("give the VERSION", "rnnwatch model list")),
    ("model list {model} v1", 2, ("takes only the model directory",)),
    ("model use {model} nope", 2, ("no version 'nope'", "versions:")),
    # evaluate
    ("evaluate", 2, ("required: --data, --label-column", HELP)),
    ("evaluate --data {tmp}/nope --label-column label", 2, ("nope is not a directory",)),
    ("evaluate --data {labelled} --label-column label", 2, ("has no column 'label'", "name it with --label-column")),
    ("evaluate --data {labelled} --label-column label --worst -1", 2, ("--worst must be >= 0",)),
    ("evaluate --data {labelled} --label-column label --train-minutes 0", 2, ("--train-minutes > 0",)),
    ("evaluate --data {labelled} --label-column label --max-minutes 0", 2, ("--train-minutes > 0",)),  # old name
    # bench
    ("bench", 2, ("required: benchmark", HELP)),
    ("bench bogus", 2, ("invalid choice: 'bogus'", "'nab'")),
    ("bench fleet --split all", 2, ("--split is tune or report",)),
    ("bench rigs --split all", 2, ("--split is tune or report",)),
    ("bench fleet --seeds 0", 2, ("--seeds must be between 1 and 8",)),
    ("bench rigs --seeds 99", 2, ("--seeds must be between 1 and 8",)),
    ("bench fleet --streams 0", 2, ("--streams must be positive",)),
    ("bench fleet --seeds abc", 2, ("--seeds: invalid int", HELP)),
    ("bench nab --train-minutes 0", 2, ("--train-minutes must be > 0",)),
    ("bench rigs --train-seconds -5", 2, ("--train-minutes must be > 0",)),  # the old name, in seconds
    ("bench nab --train-minutes soon", 2, ("--train-minutes: invalid float", HELP)),
    ("bench nab --bidirectional", 2, ("--bidirectional is refused", "rnnwatch score --bidirectional")),
    ("bench nab --data {tmp}/nope", 2, ("is not a NAB checkout", "give --data PATH")),
    # broker (start is not run here: it would start one)
    ("broker", 2, ("required: action", HELP)),
    ("broker bogus", 2, ("invalid choice: 'bogus'", "'start'")),
    ("broker status --run-dir {tmp}/no-broker", 1, ("no broker running", "`rnnwatch broker start`")),
    ("broker start --port 0", 2, ("--port takes 1..65535",)),
    ("broker status --port 9092", 2, ("goes with start only",)),
    ("broker start --port {busy_port} --run-dir {tmp}/b", 1, ("is in use", "give another")),
    # demo
    ("demo --streams 0", 2, ("--streams >= 1",)),
    ("demo --history-events 10", 2, ("too short to learn", "give more")),
    ("demo --guarantee bogus", 2, ("--guarantee: invalid choice", "exactly_once")),
    ("demo --anomaly-threshold 2 --bootstrap-servers {dead}", 2, ("must be in [0, 1]",)),
    ("demo --train-minutes 0 --bootstrap-servers {dead}", 2, ("--train-minutes > 0",)),
    ("demo --bootstrap-servers {dead} --out {tmp}/demo", 1, ("no Kafka broker answers", "leave out --bootstrap")),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The placeholders' values: a one-feature model, one- and two-feature logs, broken configs, a dead port."""
    tmp = tmp_path_factory.mktemp("bad-usage")
    model = tmp / "model"
    save_artifact(model, ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=3))
    log, log2 = tmp / "one.jsonl", tmp / "two.jsonl"
    log.write_text("".join(json.dumps({"key": "a", "time": i, "value": 1.0 + i % 3}) + "\n" for i in range(50)))
    log2.write_text("".join(json.dumps({"key": "a", "time": i, "values": [1.0, 2.0]}) + "\n" for i in range(50)))
    (tmp / "bad.toml").write_text("input_topic = [unterminated\n")
    (tmp / "unknown.toml").write_text("inptu_topic = 'x'\n")
    (tmp / "empty").mkdir()
    (tmp / "nab.csv").write_text("timestamp,value\n2020-01-01 00:00:00,1\n")  # NAB's header: no key column
    labelled = tmp / "labelled"
    labelled.mkdir()
    (labelled / "a.csv").write_text("time,value\n0,1\n1,2\n")
    with socket.socket() as probe:  # a port that was free a moment ago: connecting to it is refused
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    busy = socket.socket()  # held for the module: `broker start --port` on it is refused before any work
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    names = {"tmp": tmp, "model": model, "log": log, "log2": log2, "labelled": labelled, "dead": dead}
    names |= {"bad_toml": tmp / "bad.toml", "unknown_toml": tmp / "unknown.toml", "no_key_csv": tmp / "nab.csv"}
    names["busy_port"] = busy.getsockname()[1]
    with busy:
        yield {k: str(v) for k, v in names.items()}


def _ids() -> list[str]:
    return [argv or "(nothing)" for argv, _, _ in CASES]


@pytest.mark.parametrize(("argv", "code", "words"), CASES, ids=_ids())
def test_bad_usage_is_one_line_that_says_what_to_do(
    argv: str,
    code: int,
    words: tuple[str, ...],
    places: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [n for n in os.environ if n.startswith("RNNWATCH_")]:
        monkeypatch.delenv(name)  # the developer's own settings must not change what is tested
    monkeypatch.chdir(places["tmp"])
    try:
        got = main([part.format(**places) for part in argv.split()])
    except SystemExit as done:  # argparse's way out
        got = int(done.code or 0)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, err
    assert "Traceback" not in err and lines, err
    assert all(line.startswith(PROGRESS) for line in lines[:-1]), err  # then the error: one line
    for word in words:
        assert word in lines[-1], lines[-1]
    assert not out.strip(), out  # nothing for a pipe to mistake for results


def test_every_command_is_covered() -> None:
    covered = {argv.replace("--log-level WARNING ", "").split()[0] for argv, _, _ in CASES if argv and argv[0] != "-"}
    assert set(COMMANDS) <= covered | {"bogus"}, set(COMMANDS) - covered


def test_the_console_entry_point_prints_the_same_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "score", "--logs", "x.jsonl"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and not done.stdout
    assert done.stderr.strip().splitlines() == [
        "rnnwatch score: the following arguments are required: --model-dir/--model, --out (`rnnwatch score --help` "
        "lists every flag)"
    ]
