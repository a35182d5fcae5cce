"""SIGTERM in any state ends `rnnwatch serve` within ``shutdown_timeout_seconds``, cleanly and without a traceback.

A steady-state outage is covered by test_sigterm_outage.py; these are the states before the first batch, where a
stop used to wait for aiokafka (its bootstrap waits ``request_timeout_ms``, 40 s, for a broker that does not
answer; its coordinator lookups and the transactional producers' InitProducerId have no bound at all):

* black-holed before the start (``TcpProxy.black_hole``: the broker's packets dropped, nothing refused), so
  ``start()`` waits in its first request: SIGTERM exits 0;
* black-holed just after the start, while the replica joins its group, fences and restores its partitions: exit 0;
* the broker stopped before the start (connections refused): the service says why in one line (exit 1) or, when
  the SIGTERM comes first, exits 0.

Each replica is a real `rnnwatch serve` process against this test's own broker (``proxied_broker``).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from tests.kafka_helpers import create_topics, run_sync, unique_name
from tests.stream.serve_processes import free_port, serve_args, start_serve, tail
from tests.stream.service_harness import ProxiedBroker

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

SHUTDOWN_TIMEOUT_S = 4.0
BOUND_S = SHUTDOWN_TIMEOUT_S + 4.0  # the closing steps past the deadline (0.5 s each) and the interpreter's exit
WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=5)


def _wait(
    condition: Callable[[], bool], seconds: float, what: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the service exited ({process.returncode}) before {what}:\n" + tail(log)
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s:\n" + tail(log)
        time.sleep(0.05)


def _logged(log: Path, text: str) -> Callable[[], bool]:
    return lambda: text in log.read_text(errors="replace")


def _terminate(process: subprocess.Popen[bytes], log: Path) -> tuple[int, float]:
    """SIGTERM the service (unless it already exited); its exit code and how long the exit took."""
    sent = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        rc = process.wait(BOUND_S + 30)
    finally:
        if process.poll() is None:
            process.kill()
    return rc, time.monotonic() - sent


def _assert_clean(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "CancelledError" not in text, tail(log)


def test_sigterm_before_and_while_starting_against_an_unreachable_broker_ends_in_time(
    proxied_broker: ProxiedBroker, tmp_path: Path
) -> None:
    broker, proxy, bootstrap, proxied = proxied_broker
    topics = {role: unique_name(role) for role in ("in", "out", "dlq", "log")}
    configs = {"log": {"cleanup.policy": "compact"}}
    run_sync(create_topics(bootstrap, [NewTopic(n, 2, 1, topic_configs=configs.get(r, {})) for r, n in topics.items()]))
    save_artifact(tmp_path / "model", WEIGHTS)
    env = {"RNNWATCH_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_S)}

    def serve(name: str, via: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{name}.log"
        args = serve_args(via, topics, unique_name("g"), name, tmp_path / "model", "--guarantee", "exactly_once")
        return start_serve(args, log, free_port(), env), log

    # 1. black-holed before the start: start() waits in its first request to the broker
    proxy.black_hole()
    first, log = serve("before-start", proxied)
    _wait(_logged(log, "connecting to Kafka"), 90, "the start", first, log)
    time.sleep(1.0)  # well into the unanswered bootstrap (the exit is bounded whenever the signal comes)
    rc, took = _terminate(first, log)
    assert rc == 0, tail(log)
    assert took < BOUND_S, f"exit took {took:.1f} s:\n" + tail(log)
    assert "stop requested while starting" in log.read_text(), tail(log)
    _assert_clean(log)

    # 2. black-holed once started: joining the group, fencing and restoring wait on the broker
    proxy.restore()
    second, log = serve("while-joining", proxied)
    _wait(_logged(log, "service started"), 90, "the start", second, log)
    proxy.black_hole()
    time.sleep(1.0)
    rc, took = _terminate(second, log)
    proxy.restore()
    assert rc == 0, tail(log)
    assert took < BOUND_S, f"exit took {took:.1f} s:\n" + tail(log)
    _assert_clean(log)

    # 3. the broker stopped before the start: a one-line reason, or a clean stop if the signal came first
    broker.stop()
    third, log = serve("broker-down", bootstrap)
    _wait(_logged(log, "connecting to Kafka"), 90, "the start", third, log)
    rc, took = _terminate(third, log)
    assert took < BOUND_S, f"exit took {took:.1f} s:\n" + tail(log)
    assert rc in (0, 1), tail(log)
    if rc == 1:
        assert "cannot connect to Kafka at" in log.read_text(), tail(log)
    _assert_clean(log)
