"""`rnnwatch serve` as a process: config errors exit 2; kill -9 mid-stream loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.cli import main
from tests.kafka_helpers import run_sync
from tests.stream.serve_processes import free_port, metric, serve_args, start_serve
from tests.stream.service_harness import messages_of, publish, read_all, scores_by_key

WEIGHTS = ModelWeights.random(ModelConfig(cell="lstm", n_features=2, hidden_size=8), seed=5)


def test_serve_without_a_model_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("RNNWATCH_")]:
        monkeypatch.delenv(name)
    assert main(["serve", "--input-topic", "a"]) == 2


def test_serve_with_a_bad_setting_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNWATCH_MAX_BATCH_SIZE", "lots")
    assert main(["serve", "--model-dir", str(tmp_path)]) == 2


def _topics(make_topic: Callable[..., str], partitions: int) -> dict[str, str]:
    """Fresh in/out/dlq/log topics; the input and the changelog with ``partitions``."""
    layout = (("in", partitions), ("out", 1), ("dlq", 1), ("log", partitions))
    return {name: make_topic(partitions=p, prefix=name) for name, p in layout}


def _events(seed: int, n_keys: int, per_key: int) -> list[tuple[str, float, list[float]]]:
    """Interleaved two-feature events of ``n_keys`` streams: a sine and seeded noise."""
    rng = np.random.default_rng(seed)
    return [
        (f"s{k}", 100.0 + i, [float(np.sin(i / 7 + k)), float(rng.standard_normal())])
        for i in range(per_key)
        for k in range(n_keys)
    ]


def _start(args: list[str], log: Path, port: int) -> subprocess.Popen[bytes]:
    """A replica whose dead partitions free up sooner (6 s session timeout)."""
    return start_serve(args, log, port, env={"RNNWATCH_SESSION_TIMEOUT_MS": "6000"})


@pytest.mark.kafka
@pytest.mark.faults
@pytest.mark.timeout(240)
def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str], make_group: Callable[[], str], tmp_path: Path
) -> None:
    topics = _topics(make_topic, 2)
    n_keys, per_key = 8, 250
    events = _events(0, n_keys, per_key)
    run_sync(publish(kafka_bootstrap, topics["in"], messages_of(events)))
    save_artifact(tmp_path / "model", WEIGHTS)
    args = serve_args(
        kafka_bootstrap, topics, make_group(), "replica-0", tmp_path / "model",
        "--guarantee", "exactly_once", "--max-batch-size", "20", "--snapshot-every", "7",
    )  # fmt: skip
    log = tmp_path / "serve.log"
    port = free_port()
    first = _start(args, log, port)
    try:
        deadline = time.monotonic() + 120
        while metric(port, "rnnwatch_events_consumed_total") < len(events) // 3:
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "first replica made no progress:\n" + log.read_text()[-3000:]
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        consumed_before_kill = metric(port, "rnnwatch_events_consumed_total")
        assert consumed_before_kill == -1.0  # the process is gone
    finally:
        if first.poll() is None:
            first.kill()
    second = _start(args, log, port)
    try:
        records = run_sync(read_all(kafka_bootstrap, topics["out"], len(events), timeout=150, settle=3.0))
        consumed_by_second = metric(port, "rnnwatch_events_consumed_total")
        assert 0 < consumed_by_second < len(events)  # it took over mid-stream, after the kill
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
    got = scores_by_key(records)
    sources = Counter((s["partition"], s["offset"]) for scores in got.values() for s in scores)
    assert len(records) == len(events) == len(sources)  # every input offset scored exactly once
    assert sorted(len(scores) for scores in got.values()) == [per_key] * n_keys
    from rnncore.scorer import build_scorer

    offline = build_scorer(WEIGHTS, max_streams=100)  # what serve builds for a model without envelope.npz
    expected: dict[str, list[list[float]]] = {}
    for key, t, v in events:
        result = offline.step([key], np.array([t]), np.array([v], dtype=np.float32))
        expected.setdefault(key, []).append([float(result.scores[0]), float(result.nll[0])])
    for key, scores in got.items():
        published = [[s["score"], np.nan if s["nll"] is None else s["nll"]] for s in scores]
        np.testing.assert_allclose(published, expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
    assert max(s["score"] for scores in got.values() for s in scores) > 0  # past the scorer's warm-up


@pytest.mark.kafka
@pytest.mark.faults
@pytest.mark.timeout(240)
def test_two_replicas_one_killed_the_survivor_takes_over_from_restored_state(
    kafka_bootstrap: str, make_topic: Callable[..., str], make_group: Callable[[], str], tmp_path: Path
) -> None:
    topics = _topics(make_topic, 4)
    events = _events(1, n_keys=16, per_key=150)
    save_artifact(tmp_path / "model", WEIGHTS)
    group = make_group()

    def args(instance: str) -> list[str]:
        extra = ("--max-batch-size", "10", "--snapshot-every", "5")
        return serve_args(kafka_bootstrap, topics, group, instance, tmp_path / "model", *extra)

    log = tmp_path / "serve.log"
    port_a, port_b = free_port(), free_port()
    a = _start(args("replica-a"), log, port_a)
    b = _start(args("replica-b"), log, port_b)
    try:
        deadline = time.monotonic() + 90
        while not (
            metric(port_a, "rnnwatch_assigned_partitions") > 0 and metric(port_b, "rnnwatch_assigned_partitions") > 0
        ):
            assert a.poll() is None and b.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the replicas never split the partitions:\n" + log.read_text()[-3000:]
            time.sleep(0.1)
        run_sync(publish(kafka_bootstrap, topics["in"], messages_of(events)))
        while metric(port_a, "rnnwatch_events_consumed_total") < len(events) // 8:
            assert time.monotonic() < deadline, "replica a made no progress:\n" + log.read_text()[-3000:]
            time.sleep(0.02)
        # a still has events to score in its partitions: the kill is mid-stream
        assert metric(port_a, "rnnwatch_consumer_lag_messages") > 0
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        records = run_sync(read_all(kafka_bootstrap, topics["out"], len(events), timeout=150, settle=3.0))
        assert metric(port_b, "rnnwatch_assigned_partitions") == 4  # the survivor owns every partition
        assert metric(port_b, "rnnwatch_restore_seconds_count") >= 2  # its own at start, a's after the kill
        b.send_signal(signal.SIGTERM)
        assert b.wait(30) == 0, log.read_text()[-3000:]
    finally:
        for replica in (a, b):
            if replica.poll() is None:
                replica.kill()
    got = scores_by_key(records)
    sources = Counter((s["partition"], s["offset"]) for scores in got.values() for s in scores)
    assert len(records) == len(events) == len(sources)  # every input offset scored exactly once
    from rnncore.detector import Detector

    offline = Detector(WEIGHTS, max_streams=100)
    expected: dict[str, list[float]] = {}
    for key, t, v in events:
        expected.setdefault(key, []).append(float(offline.step([key], np.array([t]), np.array([v], np.float32)).nll[0]))
    for key, scores in got.items():
        published = [np.nan if s["nll"] is None else s["nll"] for s in scores]
        np.testing.assert_allclose(published, expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
