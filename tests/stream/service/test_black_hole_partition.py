"""A black-hole partition: one of two `rnnwatch serve` replicas loses the broker without a reset or a refusal.

A firewall that drops packets leaves every connection open and every request unanswered: nothing fails, so
aiokafka waits (``request_timeout_ms``, 40 s) and a readiness that asked only "is the connection up?" said ready
throughout. The replica reaches the broker through a ``TcpProxy`` (``proxied_broker``, conftest.py) that stops
forwarding without closing anything (``black_hole``). Asserted: ``/readyz`` of the black-holed replica turns 503
with the reason within READY_BOUND_S; the other replica takes over all 4 partitions; after the heal (the held
bytes delivered late, as TCP retransmission would) a read_committed reader sees every input offset scored exactly
once, with the offline scores.

``RNNWATCH_BLACK_HOLE_EVENTS=200000`` runs it as a measurement (not in CI): one ``black-hole-partition:`` line.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from rnncore.model.artifact import save_artifact
from tests.kafka_helpers import run_sync
from tests.stream.replica_faults import (
    ASSIGNED,
    RATE,
    SESSION_TIMEOUT_MS,
    WEIGHTS,
    assert_exactly_once,
    await_takeover,
    load_evenly_split_replicas,
    make_events,
    make_topics,
    replica_args,
    replica_env,
    wait_for,
)
from tests.stream.serve_processes import free_port, metric, start_serve, tail
from tests.stream.service_harness import ProxiedBroker, read_all

N_EVENTS = int(os.environ.get("RNNWATCH_BLACK_HOLE_EVENTS", "30000"))
READY_BOUND_S = 15.0  # the probe: every 1 s, a broker answering within 3 s; the rest is a loaded CI machine

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(150 + N_EVENTS // 400)]


def readiness(port: int) -> tuple[int, str]:
    """HTTP status and reason of the replica's /readyz (0 and the error when nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()
    except OSError as error:
        return 0, str(error)


def test_a_replica_behind_a_black_hole_turns_not_ready_and_exactly_once_holds_after_the_heal(
    proxied_broker: ProxiedBroker, make_group: Callable[[], str], tmp_path: Path
) -> None:
    _, proxy, bootstrap, proxied = proxied_broker
    topics = make_topics(bootstrap)
    events = make_events(N_EVENTS)
    save_artifact(tmp_path / "model", WEIGHTS)
    group = make_group()
    log = tmp_path / "serve.log"
    port_a, port_b = free_port(), free_port()
    holed = start_serve(
        replica_args(proxied, topics, group, "replica-holed", tmp_path / "model"), log, port_a, replica_env()
    )
    other = start_serve(
        replica_args(bootstrap, topics, group, "replica-other", tmp_path / "model"), log, port_b, replica_env()
    )
    replicas = [holed, other]
    publisher: threading.Thread | None = None
    takeover_seen: threading.Event | None = None
    try:
        publisher, takeover_seen = load_evenly_split_replicas(
            (port_a, port_b), bootstrap, topics["in"], events, replicas, log, "black-hole"
        )
        assert readiness(port_a)[0] == 200, readiness(port_a)
        proxy.black_hole()
        holed_at = time.monotonic()
        wait_for(lambda: readiness(port_a)[0] == 503, READY_BOUND_S, "/readyz 503 behind the black hole", replicas, log)
        not_ready_after = time.monotonic() - holed_at
        status, reason = readiness(port_a)
        assert status == 503 and "unreachable" in reason and proxied in reason, (status, reason)
        await_takeover(port_b, takeover_seen, replicas, log)
        time.sleep(max(0.0, holed_at + SESSION_TIMEOUT_MS / 1000 + 2 - time.monotonic()))
        holed_for = time.monotonic() - holed_at
        assert readiness(port_a)[0] == 503, readiness(port_a)  # still cut off, still saying so
        proxy.restore()
        publisher.join(N_EVENTS / RATE + 60)
        assert not publisher.is_alive(), "the events were not all published"
        records = run_sync(read_all(bootstrap, topics["out"], N_EVENTS, timeout=60 + N_EVENTS / 1000, settle=3.0))
        wait_for(
            lambda: metric(port_a, ASSIGNED) + metric(port_b, ASSIGNED) == 4,
            60,
            "one owner per partition after the heal",
            replicas,
            log,
        )
        wait_for(lambda: readiness(port_a)[0] == 200, 60, "/readyz 200 after the heal", replicas, log)
        fenced = metric(port_a, 'rnnwatch_rebalances_total{kind="fenced"}')
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            assert replica.wait(30) == 0, tail(log)
    finally:
        proxy.restore()
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
        if takeover_seen is not None:
            takeover_seen.set()
        if publisher is not None:
            publisher.join(5)

    assert_exactly_once(
        "black-hole-partition",
        records,
        events,
        tmp_path / "model",
        tmp_path,
        holed_for_s=holed_for,
        not_ready_after_s=not_ready_after,
        fenced_partitions=fenced,
    )
