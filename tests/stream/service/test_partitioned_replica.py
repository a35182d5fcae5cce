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
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.stream.replica_faults import SESSION_TIMEOUT_MS, assert_exactly_once, start_replica_pair
from tests.stream.service_harness import ProxiedBroker

N_EVENTS = int(os.environ.get("RNNWATCH_PARTITIONED_REPLICA_EVENTS", "30000"))

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(150 + N_EVENTS // 400)]


def test_a_replica_cut_off_from_the_broker_past_its_session_timeout_duplicates_and_loses_nothing(
    proxied_broker: ProxiedBroker, make_group: Callable[[], str], tmp_path: Path
) -> None:
    _, proxy, bootstrap, proxied = proxied_broker
    names = ("replica-cut", "replica-other")
    pair = start_replica_pair(bootstrap, proxied, names, make_group(), tmp_path, N_EVENTS)
    try:
        pair.load("cut off")
        proxy.cut()
        cut_at = time.monotonic()
        pair.await_takeover(pair.replicas)
        time.sleep(max(0.0, cut_at + SESSION_TIMEOUT_MS / 1000 + 2 - time.monotonic()))
        cut_for = time.monotonic() - cut_at
        assert proxy.refused > 0, "the cut-off replica never tried to reconnect: the proxy did not cut it off"
        proxy.restore()
        records, fenced = pair.drain("one owner per partition after the reconnect")
    finally:
        pair.stop()

    assert_exactly_once(
        "partitioned-replica",
        records,
        pair.events,
        pair.model,
        tmp_path,
        cut_for_s=cut_for,
        refused_connections=proxy.refused,
        fenced_partitions=fenced,
    )
