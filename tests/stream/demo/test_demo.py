"""`rnnwatch demo`: precision/recall against injected truth, the plot, and whole runs against a real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnncore.calibration_prior import PRIOR_FIELD, CalibrationPrior
from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.data.synthetic import InjectedAnomaly, SyntheticStream, generate_fleet
from stream.demo.evaluation import StreamFlags, evaluate, flags_from_scores
from stream.demo.plot import pick_streams, plot_streams
from stream.demo.scores import ScorePoint

REPO = Path(__file__).resolve().parents[3]


def _stream(key: str, n: int, anomalies: list[tuple[str, int, int]]) -> SyntheticStream:
    labels = np.zeros(n, dtype=np.int8)
    for _, start, end in anomalies:
        labels[start:end] = 1
    return SyntheticStream(
        key=key,
        family="seasonal",
        times=np.arange(n, dtype=np.float64),
        values=np.zeros((n, 1)),
        labels=labels,
        anomalies=tuple(InjectedAnomaly(kind, s, e, 5.0) for kind, s, e in anomalies),
    )


def test_evaluation_counts_found_anomalies_and_flags_in_windows() -> None:
    a = _stream("a", 100, [("spike", 20, 21), ("drift", 50, 60)])
    b = _stream("b", 100, [("frozen", 30, 40)])
    flags_a = np.zeros(100, dtype=bool)
    flags_a[[20, 65, 90]] = True  # the spike (exact), the drift (inside the 10-event grace), a false alarm
    flags_b = np.zeros(100, dtype=bool)  # the frozen sensor is missed
    result = evaluate([StreamFlags(a, np.arange(100), flags_a), StreamFlags(b, np.arange(100), flags_b)], grace=10)
    assert result.anomaly_recall == pytest.approx(2 / 3)
    assert result.flag_precision == pytest.approx(2 / 3)
    assert result.event_precision == pytest.approx(1 / 3)  # only event 20 carries a label; 65 is in the grace
    assert result.event_recall == pytest.approx(1 / 21)
    assert result.anomalies_found == {"spike": 1, "drift": 1}
    assert result.anomalies == {"spike": 1, "drift": 1, "frozen": 1}
    assert "frozen 0/1" in result.table()


def test_anomalies_never_reached_are_neither_found_nor_missed() -> None:
    a = _stream("a", 100, [("spike", 20, 21), ("level_shift", 80, 90)])
    result = evaluate([StreamFlags(a, np.arange(50), np.zeros(50, dtype=bool))])
    assert result.anomalies == {"spike": 1}


def test_flags_join_sent_events_with_scores_read_back() -> None:
    a = _stream("a", 10, [])
    sent = {"a": [(100.0, 0), (101.0, 1), (102.0, 2)]}
    scores = {("a", 100.0): False, ("a", 102.0): True}  # event 1's score has not arrived
    [flags] = flags_from_scores({"a": a}, sent, scores)
    assert flags.indices.tolist() == [0, 2]
    assert flags.flagged.tolist() == [False, True]


def test_plot_writes_a_png_covering_several_anomaly_kinds(tmp_path: Path) -> None:
    fleet = generate_fleet(8, 300, seed=3)
    chosen = pick_streams(fleet.streams, 3)
    assert len(chosen) == 3
    assert len({a.kind for s in chosen for a in s.anomalies}) >= 3
    sent, points = {}, {}
    for stream in chosen:
        sent[stream.key] = [(float(t), i) for i, t in enumerate(stream.times)]
        for i, t in enumerate(stream.times):
            labelled = bool(stream.labels[i])
            points[(stream.key, float(t))] = ScorePoint(
                score=float(labelled), anomaly=labelled, mean=float(stream.values[i, 0]), scale=1.0
            )
    path = plot_streams(tmp_path / "demo.png", chosen, sent, points, threshold=0.99, warmup_events=50)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def _demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream.cli", "demo", *args]


@pytest.mark.kafka
@pytest.mark.torch
@pytest.mark.timeout(240)
def test_demo_trains_runs_and_reports_against_a_running_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        _demo(
            "--bootstrap-servers",
            kafka_bootstrap,
            "--streams",
            "12",
            "--events-per-stream",
            "300",
            "--history-events",
            "600",
            "--rate",
            "3000",
            "--partitions",
            "2",
            "--train-minutes",
            "0.05",
            "--out",
            str(out),
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "anomaly recall" in result.stdout and "flag precision" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sent"] == 12 * 300
    assert summary["scored"] == summary["sent"]  # every event's score was read back exactly once per key/time
    assert (out / "history.csv").read_text().count("\n") == 1 + 12 * 600  # what the model was trained on
    assert (out / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "model" / "current" / "model.json").exists()


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_ctrl_c_stops_the_demo_and_its_own_broker(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    weights = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=1)
    prior = CalibrationPrior(
        mean_surprise=0.0, var_surprise=1.0, mean_short=0.0, var_short=0.1, events=1000, streams=50
    )
    # a cached model of this fleet (with the prior a demo model has): no training in this test
    save_artifact(out / "model", weights, {PRIOR_FIELD: prior.to_dict()})
    (out / "model-fleet.json").write_text(json.dumps({"seed": 1, "streams": 50, "history_events": 2000}))
    process = subprocess.Popen(
        _demo("--streams", "50", "--events-per-stream", "2000", "--rate", "500", "--out", str(out)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "scored" in line and "sent" in line:  # the live phase has started
            break
        assert line or process.poll() is None, "".join(lines)
    else:
        process.kill()
        pytest.fail("the demo never reached its live phase:\n" + "".join(lines))
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest and "broker: stopping" in rest
    status = subprocess.run(
        ["bash", str(REPO / "deploy/kafka/broker.sh"), "status", str(out / "broker")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode != 0, status.stdout
    leftover = subprocess.run(["pgrep", "-f", str(out / "broker")], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == ""


def test_an_unreachable_broker_is_one_line_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from stream.cli import main

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    assert main(["demo", "--bootstrap-servers", f"127.0.0.1:{port}", "--out", str(tmp_path / "demo")]) == 1
    err = capsys.readouterr().err
    assert f"no Kafka broker answers at 127.0.0.1:{port}" in err and "Traceback" not in err
    assert not (tmp_path / "demo" / "model").exists() and time.monotonic() - started < 30
