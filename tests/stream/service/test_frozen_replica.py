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

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.cli import main
from tests.kafka_helpers import run_sync
from tests.stream.serve_processes import free_port, metric, serve_args, start_serve, tail
from tests.stream.service_harness import event, read_all, scores_by_key

N_EVENTS = int(os.environ.get("RNNWATCH_FROZEN_REPLICA_EVENTS", "30000"))
RATE = 3000.0  # events/s while the replicas run (the reported fault ran at ~3k events/s)
N_KEYS = 50
SESSION_TIMEOUT_MS = 6000  # the broker's minimum: the frozen replica loses its partitions sooner
WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=11)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(120 + N_EVENTS // 400)]


def _events(n: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(7)
    keys = [f"unit-{i % N_KEYS}" for i in range(n)]
    values = np.sin(np.arange(n) / 40.0) + 0.2 * rng.standard_normal(n)
    return [(key, 1000.0 + i, float(v)) for i, (key, v) in enumerate(zip(keys, values, strict=True))]


async def _publish_at_rate(
    bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]], rate: float, hold: threading.Event
) -> None:
    """Send the events in order at about ``rate`` events/s (chunks every 50 ms), waiting for every ack; the second
    half only once ``hold`` is set (the takeover was seen)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        chunk = max(1, int(rate / 20))
        half = len(payloads) // 2
        for n, part in enumerate((payloads[:half], payloads[half:])):
            if n == 1:
                await asyncio.to_thread(hold.wait, 120)
            started = time.perf_counter()
            for i in range(0, len(part), chunk):
                futures = [await producer.send(topic, value=value, key=key) for key, value in part[i : i + chunk]]
                await asyncio.gather(*futures)
                await asyncio.sleep(max(0.0, started + (i + chunk) / rate - time.perf_counter()))
    finally:
        await producer.stop()


def _wait(
    condition: Callable[[], bool], seconds: float, what: str, replicas: list[subprocess.Popen[bytes]], log: Path
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        for replica in replicas:
            assert replica.poll() is None, (
                f"a replica exited ({replica.returncode}) while waiting for {what}:\n" + tail(log)
            )
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s:\n" + tail(log)
        time.sleep(0.05)


def _offline_scores(
    events: list[tuple[str, float, float]], model: Path, scratch: Path
) -> dict[tuple[str, float], float]:
    """Score of every (key, time) from `rnnwatch score` over the same events."""
    log, out = scratch / "events.jsonl", scratch / "offline.jsonl"
    log.write_bytes(b"".join(event(k, t, v) + b"\n" for k, t, v in events))
    assert main(["score", "--logs", str(log), "--model", str(model), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {(row["key"], row["time"]): row["score"] for row in rows}


def test_a_replica_frozen_past_its_session_timeout_duplicates_and_loses_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str], make_group: Callable[[], str], tmp_path: Path
) -> None:
    topics = {
        name: make_topic(partitions=p, prefix=name, config=config)
        for name, p, config in (
            ("in", 4, None),
            ("out", 4, None),
            ("dlq", 1, None),
            ("log", 4, {"cleanup.policy": "compact"}),
        )
    }
    events = _events(N_EVENTS)
    save_artifact(tmp_path / "model", WEIGHTS)
    group = make_group()

    def args(instance: str) -> list[str]:
        extra = ("--guarantee", "exactly_once", "--snapshot-every", "20")
        return serve_args(kafka_bootstrap, topics, group, instance, tmp_path / "model", *extra)

    log = tmp_path / "serve.log"
    env = {"RNNWATCH_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}
    port_a, port_b = free_port(), free_port()
    frozen = start_serve(args("replica-frozen"), log, port_a, env)
    other = start_serve(args("replica-other"), log, port_b, env)
    replicas = [frozen, other]
    publisher: threading.Thread | None = None
    takeover_seen = threading.Event()  # releases the second half of the events
    try:
        assigned = "rnnwatch_assigned_partitions"
        _wait(
            lambda: metric(port_a, assigned) == 2 == metric(port_b, assigned),
            90,
            "even split of the 4 partitions",
            replicas,
            log,
        )
        payloads = [(k.encode(), event(k, t, v)) for k, t, v in events]
        publisher = threading.Thread(
            target=run_sync, args=(_publish_at_rate(kafka_bootstrap, topics["in"], payloads, RATE, takeover_seen),)
        )
        publisher.start()
        _wait(
            lambda: metric(port_a, "rnnwatch_events_consumed_total") >= N_EVENTS // 10,
            60,
            "progress of the replica to freeze",
            replicas,
            log,
        )
        frozen.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        # past its session timeout: the other replica owns all 4 partitions and has scored more of them
        _wait(lambda: metric(port_b, assigned) == 4, 60, "takeover by the other replica", [other], log)
        taken_over = metric(port_b, "rnnwatch_events_consumed_total")
        takeover_seen.set()  # at least N_EVENTS // 2 more events to come: progress cannot be missed
        _wait(
            lambda: metric(port_b, "rnnwatch_events_consumed_total") > taken_over + RATE,
            30,
            "progress after the takeover",
            [other],
            log,
        )
        time.sleep(max(0.0, stopped_at + SESSION_TIMEOUT_MS / 1000 + 1 - time.monotonic()))  # its last heartbeat
        frozen_for = time.monotonic() - stopped_at  # came before the stop: the takeover can precede the timeout
        frozen.send_signal(signal.SIGCONT)
        publisher.join(N_EVENTS / RATE + 60)
        assert not publisher.is_alive(), "the events were not all published"
        records = run_sync(read_all(kafka_bootstrap, topics["out"], N_EVENTS, timeout=60 + N_EVENTS / 1000, settle=3.0))
        fenced = metric(port_a, 'rnnwatch_rebalances_total{kind="fenced"}')
        _wait(
            lambda: metric(port_a, assigned) + metric(port_b, assigned) == 4,
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
        takeover_seen.set()
        if publisher is not None:
            publisher.join(5)

    got = scores_by_key(records)
    sources = Counter((s["partition"], s["offset"]) for scores in got.values() for s in scores)
    duplicates = sum(n - 1 for n in sources.values())
    missing = N_EVENTS - len(sources)
    print(
        f"frozen-replica: events={N_EVENTS} records={len(records)} duplicates={duplicates} missing={missing} "
        f"frozen_for_s={frozen_for:.1f} fenced_partitions={fenced:.0f}"
    )
    assert (duplicates, missing) == (0, 0)
    assert sorted(len(scores) for scores in got.values()) == [N_EVENTS // N_KEYS] * N_KEYS
    offline = _offline_scores(events, tmp_path / "model", tmp_path)
    published = {(key, s["time"]): s["score"] for key, scores in got.items() for s in scores}
    assert published.keys() == offline.keys()
    keys = sorted(offline)
    np.testing.assert_allclose([published[k] for k in keys], [offline[k] for k in keys], rtol=1e-5, atol=1e-6)
    assert max(offline.values()) > 0  # past the scorer's warm-up
