"""Shared pieces of the replica fault scenarios (frozen, partitioned): two `rnnwatch serve` replicas on 4 partitions
under load, one of them silenced past its session timeout, then a check that a read_committed reader sees every
input offset scored exactly once with the offline `rnnwatch score` scores."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic

from rnncore.model.artifact import save_artifact
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from stream.cli import main
from tests.kafka_helpers import create_topics, run_sync, unique_name
from tests.stream.serve_processes import free_port, metric, serve_args, start_serve, tail
from tests.stream.service_harness import event, messages_of, read_all, scores_by_key

RATE = 3000.0  # events/s while the replicas run (the reported fault ran at ~3k events/s)
N_KEYS = 50
SESSION_TIMEOUT_MS = 6000  # the broker's minimum: the silenced replica loses its partitions sooner
WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=11)
TOPICS = (("in", 4, None), ("out", 4, None), ("dlq", 1, None), ("log", 4, {"cleanup.policy": "compact"}))


def make_topics(bootstrap: str) -> dict[str, str]:
    """The scenario's input, output, dead-letter and changelog topics (keys in, out, dlq, log), uniquely named."""
    topics = {name: unique_name(name) for name, _, _ in TOPICS}
    new = [
        NewTopic(topics[name], num_partitions=p, replication_factor=1, topic_configs=c or {}) for name, p, c in TOPICS
    ]
    run_sync(create_topics(bootstrap, new))
    return topics


def replica_args(bootstrap: str, topics: dict[str, str], group: str, instance: str, model_dir: Path) -> list[str]:
    """`rnnwatch serve` flags of one exactly-once replica of the scenario."""
    extra = ("--guarantee", "exactly_once", "--snapshot-every", "20")
    return serve_args(bootstrap, topics, group, instance, model_dir, *extra)


def replica_env() -> dict[str, str]:
    """Environment of a replica: the short session timeout that makes the takeover quick."""
    return {"RNNWATCH_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}


def make_events(n: int) -> list[tuple[str, float, float]]:
    """``n`` events (key, time, value) over N_KEYS streams, the same for every run."""
    rng = np.random.default_rng(7)
    keys = [f"unit-{i % N_KEYS}" for i in range(n)]
    values = np.sin(np.arange(n) / 40.0) + 0.2 * rng.standard_normal(n)
    return [(key, 1000.0 + i, float(v)) for i, (key, v) in enumerate(zip(keys, values, strict=True))]


async def publish_at_rate(
    bootstrap: str,
    topic: str,
    payloads: list[tuple[bytes, bytes]],
    rate: float,
    hold: threading.Event,
    warmed: tuple[int, threading.Event] | None = None,
) -> None:
    """Send the events in order at about ``rate`` events/s (chunks every 50 ms), waiting for every ack; the second
    half only once ``hold`` is set (the takeover was seen). With ``warmed = (n, event)``, the first ``n`` events go
    first and the rest of the first half once ``event`` is set."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        chunk = max(1, int(rate / 20))
        half = len(payloads) // 2
        warm, warm_done = warmed if warmed is not None else (0, None)
        parts = [(payloads[:warm], None), (payloads[warm:half], warm_done), (payloads[half:], hold)]
        for part, release in parts:
            if release is not None:
                await asyncio.to_thread(release.wait, 120)
            started = time.perf_counter()
            for i in range(0, len(part), chunk):
                futures = [await producer.send(topic, value=value, key=key) for key, value in part[i : i + chunk]]
                await asyncio.gather(*futures)
                await asyncio.sleep(max(0.0, started + (i + chunk) / rate - time.perf_counter()))
    finally:
        await producer.stop()


def start_publisher(
    bootstrap: str,
    topic: str,
    events: list[tuple[str, float, float]],
    hold: threading.Event,
    warmed: tuple[int, threading.Event] | None = None,
) -> threading.Thread:
    """A started thread publishing ``events`` at RATE, the second half once ``hold`` is set (see publish_at_rate)."""
    payloads = messages_of(events)
    publisher = threading.Thread(
        target=run_sync, args=(publish_at_rate(bootstrap, topic, payloads, RATE, hold, warmed),)
    )
    publisher.start()
    return publisher


def wait_for(
    condition: Callable[[], bool], seconds: float, what: str, replicas: list[subprocess.Popen[bytes]], log: Path
) -> None:
    """Poll ``condition`` every 50 ms; fail with the log's tail if a replica exits or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not condition():
        for replica in replicas:
            assert replica.poll() is None, (
                f"a replica exited ({replica.returncode}) while waiting for {what}:\n" + tail(log)
            )
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s:\n" + tail(log)
        time.sleep(0.05)


ASSIGNED = "rnnwatch_assigned_partitions"
CONSUMED = "rnnwatch_events_consumed_total"


def load_evenly_split_replicas(
    ports: tuple[int, int],
    bootstrap: str,
    topic: str,
    events: list[tuple[str, float, float]],
    replicas: list[subprocess.Popen[bytes]],
    log: Path,
    what: str,
) -> tuple[threading.Thread, threading.Event]:
    """Wait until the two replicas own 2 partitions each, warm them up (the first 2 % of the events: each scores
    its first batch, which loads the kernels), wait until the split has held for SETTLE_S, then publish the rest
    of the first half (the second half held until the returned event is set), and wait until the first replica
    (the one to silence, ``what``) has consumed a tenth.

    Without the warm-up, on a loaded machine a replica stalled in its first batch past the 6 s session timeout:
    the other took all 4 partitions and consumed the whole first half before the split came back, and the silenced
    replica never reached its tenth (the second half waits for the takeover: the test hung until its deadline)."""
    port_a, port_b = ports
    split = lambda: metric(port_a, ASSIGNED) == 2 == metric(port_b, ASSIGNED)  # noqa: E731
    wait_for(split, 90, "even split of the 4 partitions", replicas, log)
    takeover_seen, warmed = threading.Event(), threading.Event()
    publisher = start_publisher(bootstrap, topic, events, takeover_seen, (len(events) // 50, warmed))
    try:
        wait_for(lambda: min(metric(port_a, CONSUMED), metric(port_b, CONSUMED)) > 0, 90,
                 "the first batch of both replicas", replicas, log)  # fmt: skip
        _wait_stable(lambda: (split(), metric(port_a, REBALANCES) + metric(port_b, REBALANCES)), replicas, log)
    finally:
        warmed.set()
    wait_for(lambda: metric(port_a, CONSUMED) >= len(events) // 10, 60, f"progress of the replica to {what}",
             replicas, log)  # fmt: skip
    return publisher, takeover_seen


SETTLE_S = 3.0
REBALANCES = "rnnwatch_rebalances_total"


def _wait_stable(
    observe: Callable[[], tuple[bool, float]], replicas: list[subprocess.Popen[bytes]], log: Path, seconds: float = 90
) -> None:
    """Poll until ``observe()`` is (True, x) with the same x for SETTLE_S (an even split and no rebalance since)."""
    deadline = time.monotonic() + seconds
    since, last = time.monotonic(), observe()
    while not (last[0] and time.monotonic() - since >= SETTLE_S):
        for replica in replicas:
            assert replica.poll() is None, f"a replica exited ({replica.returncode}) while settling:\n" + tail(log)
        assert time.monotonic() < deadline, f"the partition split did not settle within {seconds:.0f} s:\n" + tail(log)
        time.sleep(0.1)
        now = observe()
        if now != last:
            since, last = time.monotonic(), now


def await_takeover(
    port_b: int, takeover_seen: threading.Event, watched: list[subprocess.Popen[bytes]], log: Path
) -> None:
    """The other replica owns all 4 partitions, then (the held second half released) consumes more than RATE."""
    wait_for(lambda: metric(port_b, ASSIGNED) == 4, 60, "takeover by the other replica", watched, log)
    taken_over = metric(port_b, CONSUMED)
    takeover_seen.set()  # at least half the events are still to come: progress cannot be missed
    wait_for(lambda: metric(port_b, CONSUMED) > taken_over + RATE, 30, "progress after the takeover", watched, log)


def offline_scores(
    events: list[tuple[str, float, float]], model: Path, scratch: Path
) -> dict[tuple[str, float], float]:
    """Score of every (key, time) from `rnnwatch score` over the same events."""
    log, out = scratch / "events.jsonl", scratch / "offline.jsonl"
    log.write_bytes(b"".join(event(k, t, v) + b"\n" for k, t, v in events))
    assert main(["score", "--logs", str(log), "--model", str(model), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {(row["key"], row["time"]): row["score"] for row in rows}


def assert_exactly_once(
    label: str, records: list[Any], events: list[tuple[str, float, float]], model: Path, scratch: Path, **info: float
) -> None:
    """Print one ``<label>:`` line (duplicates, missing offsets, ``info``), then assert none of either and the
    offline scores for every event."""
    got = scores_by_key(records)
    sources = Counter((s["partition"], s["offset"]) for scores in got.values() for s in scores)
    duplicates = sum(n - 1 for n in sources.values())
    missing = len(events) - len(sources)
    offline = offline_scores(events, model, scratch)
    published = {(key, s["time"]): s["score"] for key, scores in got.items() for s in scores}
    keys = sorted(offline)
    equal = published.keys() == offline.keys() and bool(
        np.allclose([published[k] for k in keys], [offline[k] for k in keys], rtol=1e-5, atol=1e-6)
    )
    details = " ".join(f"{name}={value:.1f}" for name, value in info.items())
    print(
        f"{label}: events={len(events)} records={len(records)} duplicates={duplicates} missing={missing} "
        f"scores_equal_offline={equal} {details}"
    )
    assert (duplicates, missing) == (0, 0)
    assert sorted(len(scores) for scores in got.values()) == [len(events) // N_KEYS] * N_KEYS
    assert published.keys() == offline.keys()
    np.testing.assert_allclose([published[k] for k in keys], [offline[k] for k in keys], rtol=1e-5, atol=1e-6)
    assert max(offline.values()) > 0  # past the scorer's warm-up


@dataclass
class ReplicaPair:
    """The scenario's two replicas of one group: ``replicas[0]`` (reaching the broker at its own bootstrap) is the
    one a fault silences; their /metrics ports, the shared log, the events and, once loaded, the publisher."""

    bootstrap: str  # where the topics live, the events are published and the scores read
    topics: dict[str, str]
    events: list[tuple[str, float, float]]
    model: Path
    log: Path
    ports: tuple[int, int]
    replicas: list[subprocess.Popen[bytes]]
    publisher: threading.Thread | None = None
    takeover_seen: threading.Event | None = None

    def load(self, what: str) -> None:
        """Publish the events once the partitions are split evenly (see ``load_evenly_split_replicas``)."""
        self.publisher, self.takeover_seen = load_evenly_split_replicas(
            self.ports, self.bootstrap, self.topics["in"], self.events, self.replicas, self.log, what
        )

    def await_takeover(self, watched: list[subprocess.Popen[bytes]]) -> None:
        """The other replica owns all 4 partitions and makes progress (see ``await_takeover``)."""
        assert self.takeover_seen is not None, "load() first"
        await_takeover(self.ports[1], self.takeover_seen, watched, self.log)

    def drain(self, what: str) -> tuple[list[Any], float]:
        """Once the silenced replica is back: wait for the publisher, read every score record, wait for one owner
        per partition (``what``), read the silenced replica's fenced count, then stop both (each must exit 0)."""
        assert self.publisher is not None, "load() first"
        n_events = len(self.events)
        self.publisher.join(n_events / RATE + 60)
        assert not self.publisher.is_alive(), "the events were not all published"
        out = self.topics["out"]
        records = run_sync(read_all(self.bootstrap, out, n_events, timeout=60 + n_events / 1000, settle=3.0))
        port_a, port_b = self.ports
        wait_for(lambda: metric(port_a, ASSIGNED) + metric(port_b, ASSIGNED) == 4, 30, what, self.replicas, self.log)
        fenced = metric(port_a, 'rnnwatch_rebalances_total{kind="fenced"}')
        for replica in self.replicas:
            replica.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            assert replica.wait(30) == 0, tail(self.log)
        return records, fenced

    def stop(self) -> None:
        """Clean up however the scenario ended: resume (if frozen) and kill any replica still running, release the
        held second half and give the publisher a moment to finish."""
        for replica in self.replicas:
            if replica.poll() is None:
                replica.send_signal(signal.SIGCONT)
                replica.kill()
        if self.takeover_seen is not None:
            self.takeover_seen.set()
        if self.publisher is not None:
            self.publisher.join(5)


def start_replica_pair(
    bootstrap: str, silenced_bootstrap: str, names: tuple[str, str], group: str, scratch: Path, n_events: int
) -> ReplicaPair:
    """Make the topics, ``n_events`` events and the model artifact, then start the replica to silence (at
    ``silenced_bootstrap``) and the other one (at ``bootstrap``), logging to scratch/serve.log."""
    topics = make_topics(bootstrap)
    events = make_events(n_events)
    model = scratch / "model"
    save_artifact(model, WEIGHTS)
    log = scratch / "serve.log"
    ports = (free_port(), free_port())
    replicas = [
        start_serve(replica_args(address, topics, group, name, model), log, port, replica_env())
        for address, name, port in zip((silenced_bootstrap, bootstrap), names, ports, strict=True)
    ]
    return ReplicaPair(bootstrap, topics, events, model, log, ports, replicas)
