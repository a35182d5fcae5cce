"""Exactly-once under a frozen replica: SIGSTOP one of two `rnnwatch serve` replicas past its session timeout.

While it is frozen the other replica takes its partitions over; on SIGCONT the frozen one still holds the
batch it was publishing and the records it had fetched. Per-partition transactional ids fence it
(``stream.service.fencing``): a read_committed reader must see every input offset scored exactly once, with
the scores of the offline `rnnwatch score` path.

The second half of the events is published only once the takeover is seen: the check that the other replica
makes progress on all four partitions needs events still to come. (With one publishing run of ~10 s, a takeover
that a loaded machine delayed past its end found only a backlog, drained in the first batch before the test read
its baseline: "no progress after the takeover", with nothing left to score.)

``RNNWATCH_FROZEN_REPLICA_EVENTS=200000`` runs the same scenario as a measurement (not in CI): it prints one
``frozen-replica:`` line with the duplicates and missing offsets before asserting.
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

N_EVENTS = int(os.environ.get("RNNWATCH_FROZEN_REPLICA_EVENTS", "30000"))

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(120 + N_EVENTS // 400)]


def test_a_replica_frozen_past_its_session_timeout_duplicates_and_loses_nothing(
    kafka_bootstrap: str, make_group: Callable[[], str], tmp_path: Path
) -> None:
    topics = make_topics(kafka_bootstrap)
    events = make_events(N_EVENTS)
    save_artifact(tmp_path / "model", WEIGHTS)
    group = make_group()

    def args(instance: str) -> list[str]:
        return replica_args(kafka_bootstrap, topics, group, instance, tmp_path / "model")

    log = tmp_path / "serve.log"
    port_a, port_b = free_port(), free_port()
    frozen = start_serve(args("replica-frozen"), log, port_a, replica_env())
    other = start_serve(args("replica-other"), log, port_b, replica_env())
    replicas = [frozen, other]
    publisher: threading.Thread | None = None
    takeover_seen: threading.Event | None = None
    try:
        publisher, takeover_seen = load_evenly_split_replicas(
            (port_a, port_b), kafka_bootstrap, topics["in"], events, replicas, log, "freeze"
        )
        frozen.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        # past its session timeout: the other replica owns all 4 partitions and has scored more of them
        await_takeover(port_b, takeover_seen, [other], log)
        time.sleep(max(0.0, stopped_at + SESSION_TIMEOUT_MS / 1000 + 1 - time.monotonic()))  # its last heartbeat
        frozen_for = time.monotonic() - stopped_at  # came before the stop: the takeover can precede the timeout
        frozen.send_signal(signal.SIGCONT)
        publisher.join(N_EVENTS / RATE + 60)
        assert not publisher.is_alive(), "the events were not all published"
        records = run_sync(read_all(kafka_bootstrap, topics["out"], N_EVENTS, timeout=60 + N_EVENTS / 1000, settle=3.0))
        fenced = metric(port_a, 'rnnwatch_rebalances_total{kind="fenced"}')
        wait_for(
            lambda: metric(port_a, ASSIGNED) + metric(port_b, ASSIGNED) == 4,
            30,
            "one owner per partition after the resume",
            replicas,
            log,
        )
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            assert replica.wait(30) == 0, tail(log)
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.send_signal(signal.SIGCONT)
                replica.kill()
        if takeover_seen is not None:
            takeover_seen.set()
        if publisher is not None:
            publisher.join(5)

    assert_exactly_once(
        "frozen-replica",
        records,
        events,
        tmp_path / "model",
        tmp_path,
        frozen_for_s=frozen_for,
        fenced_partitions=fenced,
    )
