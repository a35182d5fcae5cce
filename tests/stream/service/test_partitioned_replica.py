"""Exactly-once under a network partition: one of two `rnnwatch serve` replicas cut off from the broker past its
session timeout, then reconnected.

The replica reaches the broker only through a ``TcpProxy`` (tests/stream/tcp_proxy.py): this test's own broker
has a second listener, PROXIED, advertised at the proxy's port (the ``proxied_broker`` fixture, conftest.py); the
cut-off replica bootstraps from it, everything else uses PLAINTEXT.
``cut()`` resets the replica's connections and refuses new ones: it cannot heartbeat, commit or publish, and
the other replica takes over all 4 partitions. After ``restore()`` it still holds the batch it was publishing
and the records it had fetched; per-partition transactional ids fence it (``stream.service.fencing``), and a
read_committed reader must see every input offset scored exactly once, with the offline scores.

``RNNWATCH_PARTITIONED_REPLICA_EVENTS=200000`` runs it as a measurement (not in CI): one ``partitioned-replica:``
line with the duplicates and missing offsets before asserting.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rnncore.model.artifact import save_artifact
from stream.local_broker import LocalBroker
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
from tests.stream.service_harness import read_all
from tests.stream.tcp_proxy import TcpProxy

N_EVENTS = int(os.environ.get("RNNWATCH_PARTITIONED_REPLICA_EVENTS", "30000"))

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(150 + N_EVENTS // 400)]


def test_a_replica_cut_off_from_the_broker_past_its_session_timeout_duplicates_and_loses_nothing(
    proxied_broker: tuple[LocalBroker, TcpProxy], make_group: Callable[[], str], tmp_path: Path
) -> None:
    broker, proxy = proxied_broker
    assert broker.bootstrap
    bootstrap, proxied = broker.bootstrap, f"127.0.0.1:{proxy.port}"
    topics = make_topics(bootstrap)
    events = make_events(N_EVENTS)
    save_artifact(tmp_path / "model", WEIGHTS)
    group = make_group()
    log = tmp_path / "serve.log"
    port_a, port_b = free_port(), free_port()
    cut_off = start_serve(
        replica_args(proxied, topics, group, "replica-cut", tmp_path / "model"), log, port_a, replica_env()
    )
    other = start_serve(
        replica_args(bootstrap, topics, group, "replica-other", tmp_path / "model"), log, port_b, replica_env()
    )
    replicas = [cut_off, other]
    publisher: threading.Thread | None = None
    takeover_seen: threading.Event | None = None
    try:
        publisher, takeover_seen = load_evenly_split_replicas(
            (port_a, port_b), bootstrap, topics["in"], events, replicas, log, "cut off"
        )
        proxy.cut()
        cut_at = time.monotonic()
        await_takeover(port_b, takeover_seen, replicas, log)
        time.sleep(max(0.0, cut_at + SESSION_TIMEOUT_MS / 1000 + 2 - time.monotonic()))
        cut_for = time.monotonic() - cut_at
        assert proxy.refused > 0, "the cut-off replica never tried to reconnect: the proxy did not cut it off"
        proxy.restore()
        publisher.join(N_EVENTS / RATE + 60)
        assert not publisher.is_alive(), "the events were not all published"
        records = run_sync(read_all(bootstrap, topics["out"], N_EVENTS, timeout=60 + N_EVENTS / 1000, settle=3.0))
        wait_for(
            lambda: metric(port_a, ASSIGNED) + metric(port_b, ASSIGNED) == 4,
            30,
            "one owner per partition after the reconnect",
            replicas,
            log,
        )
        fenced = metric(port_a, 'rnnwatch_rebalances_total{kind="fenced"}')
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            assert replica.wait(30) == 0, tail(log)
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
        if takeover_seen is not None:
            takeover_seen.set()
        if publisher is not None:
            publisher.join(5)

    assert_exactly_once(
        "partitioned-replica",
        records,
        events,
        tmp_path / "model",
        tmp_path,
        cut_for_s=cut_for,
        refused_connections=proxy.refused,
        fenced_partitions=fenced,
    )
