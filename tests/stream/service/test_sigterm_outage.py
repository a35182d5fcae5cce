"""SIGTERM while the broker is down: `rnnwatch serve` exits 0 within its shutdown timeout, without a traceback and
without committing anything half-done; once the broker is back a new replica scores every event exactly once."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.local_broker import LocalBroker
from tests.kafka_helpers import create_topics, run_sync, unique_name
from tests.stream.serve_processes import free_port, metric, serve_args, start_serve, tail
from tests.stream.service_harness import event, publish, read_all, scores_by_key

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

SHUTDOWN_TIMEOUT_S = 5.0
N_BEFORE, N_DURING = 300, 300  # scored before the outage; published just before the broker stops
WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=5)


def _messages(start: int, n: int) -> list[tuple[bytes, bytes]]:
    return [(f"k{i % 7}".encode(), event(f"k{i % 7}", 1000.0 + i, float(i % 13))) for i in range(start, start + n)]


def _wait(condition: object, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s:\n" + tail(log)
        time.sleep(0.1)


def test_sigterm_during_a_broker_outage_exits_0_in_time_and_nothing_is_lost_or_repeated(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    assert own_broker.bootstrap
    bootstrap = own_broker.bootstrap
    topics = {role: unique_name(role) for role in ("in", "out", "dlq", "log")}
    configs = {"log": {"cleanup.policy": "compact"}}
    run_sync(create_topics(bootstrap, [NewTopic(n, 2, 1, topic_configs=configs.get(r, {})) for r, n in topics.items()]))
    save_artifact(tmp_path / "model", WEIGHTS)
    group = unique_name("g")
    extra = ("--guarantee", "exactly_once", "--snapshot-every", "5")
    env = {"RNNWATCH_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_S)}
    log, port = tmp_path / "first.log", free_port()
    first = start_serve(serve_args(bootstrap, topics, group, "first", tmp_path / "model", *extra), log, port, env)
    try:
        run_sync(publish(bootstrap, topics["in"], _messages(0, N_BEFORE)))
        _wait(lambda: metric(port, "rnnwatch_events_scored_total") >= N_BEFORE, 90, "scoring before the outage", log)
        run_sync(publish(bootstrap, topics["in"], _messages(N_BEFORE, N_DURING)))  # some may be in flight
        own_broker.stop()
        _wait(lambda: "unreachable" in tail(log), 30, "the outage seen by the service", log)
        sent = time.monotonic()
        first.send_signal(signal.SIGTERM)
        rc = first.wait(SHUTDOWN_TIMEOUT_S + 30)
        took = time.monotonic() - sent
    finally:
        if first.poll() is None:
            first.kill()
    text = log.read_text(errors="replace")
    assert rc == 0, tail(log)
    assert took < SHUTDOWN_TIMEOUT_S + 5, f"exit took {took:.1f} s:\n" + tail(log)
    assert "Traceback" not in text and "CancelledError" not in text, tail(log)

    bootstrap = own_broker.resume()
    log2, port2 = tmp_path / "second.log", free_port()
    second = start_serve(serve_args(bootstrap, topics, group, "second", tmp_path / "model", *extra), log2, port2)
    try:
        records = run_sync(read_all(bootstrap, topics["out"], N_BEFORE + N_DURING, timeout=120, settle=3.0))
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, tail(log2)
    finally:
        if second.poll() is None:
            second.kill()
    sources = Counter((s["partition"], s["offset"]) for scores in scores_by_key(records).values() for s in scores)
    assert len(sources) == N_BEFORE + N_DURING, f"{N_BEFORE + N_DURING - len(sources)} events never scored"
    assert max(sources.values()) == 1, f"{sum(n - 1 for n in sources.values())} events scored twice"
