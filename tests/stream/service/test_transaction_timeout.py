"""A replica frozen longer than its transaction timeout: the broker aborts the open transaction itself.

With no other replica to take the partitions over, nothing fences the frozen one but the broker: a transaction
open past ``transaction_timeout_ms`` is aborted and its producer's epoch bumped. On SIGCONT the replica still holds
the batch it was publishing; its commit fails (fenced), it drops the partitions, rejoins its group (its session
expired too), restores the state of the last committed batch and scores the rest. A read_committed reader must see
every input offset scored exactly once, with the offline scores.

To keep it short the replica's ``transaction_timeout_ms`` is 5 s (default 60 s) and the test's broker looks for
expired transactions every second (``transaction.abort.timed.out.transaction.cleanup.interval.ms``, default 10 s).
That the broker aborted it is read from the broker: while a transaction is open, the output topic's last stable
offset (what a read_committed consumer sees as its end) stays below its high watermark.

``RNNWATCH_TRANSACTION_TIMEOUT_EVENTS=200000`` runs it as a measurement (not in CI): one ``transaction-timeout:``
line with the duplicates and missing offsets before asserting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rnncore.model.artifact import save_artifact
from stream.local_broker import LocalBroker
from tests.kafka_helpers import run_sync, unique_name
from tests.stream.replica_faults import (
    ASSIGNED,
    CONSUMED,
    WEIGHTS,
    assert_exactly_once,
    make_events,
    make_topics,
    replica_args,
    replica_env,
    start_publisher,
    wait_for,
)
from tests.stream.serve_processes import free_port, metric, start_serve, tail
from tests.stream.service_harness import read_all

N_EVENTS = int(os.environ.get("RNNWATCH_TRANSACTION_TIMEOUT_EVENTS", "20000"))
TRANSACTION_TIMEOUT_MS = 5000
CLEANUP_INTERVAL_MS = 1000

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(240 + N_EVENTS // 400)]


@pytest.fixture
def quick_abort_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test's own that aborts expired transactions within a second of their timeout."""
    extra = tmp_path / "quick-abort.properties.in"
    extra.write_text(f"transaction.abort.timed.out.transaction.cleanup.interval.ms={CLEANUP_INTERVAL_MS}\n")
    broker = LocalBroker(run_dir=tmp_path / "kafka", extra_config=extra)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def _open_transaction(bootstrap: str, topic: str, partitions: int = 4) -> bool:
    """Whether a transaction holds back part of ``topic``: its last stable offset below its high watermark."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    ends = {}
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level=isolation)
        await consumer.start()
        try:
            ends[isolation] = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
    return any(ends["read_committed"][tp] < ends["read_uncommitted"][tp] for tp in tps)


def _freeze_with_a_transaction_open(replica: subprocess.Popen[bytes], bootstrap: str, topic: str, log: Path) -> float:
    """SIGSTOP the replica at a moment it has a transaction open, still open a second later (not a commit the
    broker was completing); retried with SIGCONT up to 50 times, each a different moment under load. Returns when
    it was stopped."""
    for _ in range(50):
        replica.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        if run_sync(_open_transaction(bootstrap, topic)):
            time.sleep(1.0)
            if run_sync(_open_transaction(bootstrap, topic)):
                return stopped_at
        replica.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the replica never had a transaction open when stopped:\n" + tail(log))


def test_a_replica_frozen_past_its_transaction_timeout_has_its_transaction_aborted_and_loses_nothing(
    quick_abort_broker: LocalBroker, tmp_path: Path
) -> None:
    assert quick_abort_broker.bootstrap
    bootstrap = quick_abort_broker.bootstrap
    topics = make_topics(bootstrap)
    events = make_events(N_EVENTS)
    save_artifact(tmp_path / "model", WEIGHTS)
    log, port = tmp_path / "serve.log", free_port()
    env = {**replica_env(), "RNNWATCH_TRANSACTION_TIMEOUT_MS": str(TRANSACTION_TIMEOUT_MS)}
    args = replica_args(bootstrap, topics, unique_name("g"), "alone", tmp_path / "model")
    replica = start_serve(args, log, port, env)
    publisher: threading.Thread | None = None
    hold = threading.Event()
    try:
        wait_for(lambda: metric(port, ASSIGNED) == 4, 90, "the 4 partitions assigned", [replica], log)
        publisher = start_publisher(bootstrap, topics["in"], events, hold)
        wait_for(lambda: metric(port, CONSUMED) >= N_EVENTS // 10, 60, "progress before the freeze", [replica], log)
        stopped_at = _freeze_with_a_transaction_open(replica, bootstrap, topics["out"], log)
        deadline = stopped_at + (TRANSACTION_TIMEOUT_MS + CLEANUP_INTERVAL_MS) / 1000 + 30
        while run_sync(_open_transaction(bootstrap, topics["out"])):  # until the broker aborts it
            assert time.monotonic() < deadline, "the broker did not abort the frozen replica's transaction"
            time.sleep(0.2)
        aborted_after = time.monotonic() - stopped_at
        replica.send_signal(signal.SIGCONT)
        hold.set()
        publisher.join(N_EVENTS / 1000 + 60)
        assert not publisher.is_alive(), "the events were not all published"
        records = run_sync(read_all(bootstrap, topics["out"], N_EVENTS, timeout=60 + N_EVENTS / 1000, settle=3.0))
        fenced = metric(port, 'rnnwatch_rebalances_total{kind="fenced"}')
        wait_for(lambda: metric(port, ASSIGNED) == 4, 60, "the 4 partitions taken up again", [replica], log)
        replica.send_signal(signal.SIGTERM)
        assert replica.wait(30) == 0, tail(log)
    finally:
        if replica.poll() is None:
            replica.send_signal(signal.SIGCONT)
            replica.kill()
        hold.set()
        if publisher is not None:
            publisher.join(5)

    assert aborted_after >= TRANSACTION_TIMEOUT_MS / 1000 - 0.5, f"aborted after {aborted_after:.1f} s: not the timeout"
    assert fenced >= 1, "the resumed replica did not find its transaction aborted:\n" + tail(log)
    assert_exactly_once(
        "transaction-timeout", records, events, tmp_path / "model", tmp_path, aborted_after_s=aborted_after
    )
