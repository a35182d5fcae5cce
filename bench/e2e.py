"""End-to-end benchmark: events through Kafka -> rnnwatch service -> scores, against the detector alone.

Phases, all in one process and run (the machine is noisy; compare within a run):

1. baseline: ``Detector.step`` over the same events in the same batch size, no Kafka (compute ceiling);
2. backlog: N events already in the input topic; the service drains them (throughput, per guarantee);
3. live (per guarantee): events published at ``--rate`` events/s with their creation time as event time while
   the service runs; a read_committed reader measures event-time-to-score latency of the score records
   (generator and reader in processes of their own).

Uses the local broker (started in a temporary directory) unless ``--bootstrap`` names one.
Pin it: ``taskset -c 0,1 .venv/bin/python bench/e2e.py``. Ends with
``RESULT eos_events_per_s=<n> alo_events_per_s=<n> p50_ms=<ms> p99_ms=<ms>`` (latency: live exactly-once phase).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from machine import cpu_model  # noqa: E402  (bench/, first on sys.path)

from rnncore.model.config import ModelConfig  # noqa: E402
from rnncore.model.weights import ModelWeights  # noqa: E402
from stream.service.app import Service  # noqa: E402
from stream.service.config import ServiceConfig  # noqa: E402
from stream.service.fencing import PartitionProducers  # noqa: E402
from stream.service.partition import ScoreRecords  # noqa: E402
from stream.service.publisher import BatchPublisher  # noqa: E402
from stream.service.topics import producer_batch_bytes  # noqa: E402


class BenchError(RuntimeError):
    """The benchmark itself went wrong (lost input, a failed helper process): its numbers would mean nothing."""


class CpuSplit:
    """Wall time, this process's CPU time and the local broker's (from /proc; None with ``--bootstrap``) over
    a phase: how the phase shares the cores between the service and the broker."""

    broker_pid: int | None = None  # set by main() for the broker it started

    def __init__(self) -> None:
        self.start = (time.perf_counter(), time.process_time(), self._broker())

    @classmethod
    def _broker(cls) -> float | None:
        if cls.broker_pid is None:
            return None
        fields = Path(f"/proc/{cls.broker_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def done(self) -> dict[str, float]:
        """Seconds since the start: wall, own CPU and (local broker) broker CPU."""
        wall, own, broker = time.perf_counter(), time.process_time(), self._broker()
        split = {"wall_s": wall - self.start[0], "cpu_s": own - self.start[1]}
        if broker is not None and self.start[2] is not None:
            split["broker_cpu_s"] = broker - self.start[2]
        return split


def describe_split(split: dict[str, float]) -> str:
    """'wall 2.1 s, process CPU 1.4 s, broker CPU 1.2 s'."""
    text = f"wall {split['wall_s']:.2f} s, process CPU {split['cpu_s']:.2f} s"
    return text + (f", broker CPU {split['broker_cpu_s']:.2f} s" if "broker_cpu_s" in split else "")


def make_events(n: int, streams: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.arange(n) % streams
    keys = [f"sensor-{i}" for i in ids.tolist()]
    times = 1.7e9 + np.arange(n) / 1000.0
    values = (np.sin(np.arange(n) / 50.0 + ids) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    return keys, times, values


def baseline(weights: ModelWeights, keys: list[str], times: np.ndarray, values: np.ndarray, batch: int) -> float:
    """Events/s of Detector.step alone on the same batches (after one warm-up batch for JIT)."""
    from rnncore.detector import Detector

    detector = Detector(weights, max_streams=len(set(keys)) + 1)
    detector.step(keys[:batch], times[:batch], values[:batch])
    detector = Detector(weights, max_streams=len(set(keys)) + 1)
    started = time.perf_counter()
    for i in range(0, len(keys), batch):
        detector.step(keys[i : i + batch], times[i : i + batch], values[i : i + batch])
    return len(keys) / (time.perf_counter() - started)


async def create_topics(bootstrap: str, partitions: int) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    names = {role: f"e2e-{role}-{tag}" for role in ("input", "output", "dlq", "changelog")}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(names["input"], partitions, 1),
                NewTopic(names["output"], partitions, 1),
                NewTopic(names["dlq"], 1, 1),
                NewTopic(names["changelog"], partitions, 1, topic_configs={"cleanup.policy": "compact"}),
            ]
        )
    finally:
        await admin.close()
    await asyncio.sleep(1.0)
    return names


async def publish(bootstrap: str, topic: str, keys: list[str], times: np.ndarray, values: np.ndarray) -> float:
    """Send every event (batched awaits); returns events/s."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        for i in range(0, len(keys), 5000):
            chunk = zip(keys[i : i + 5000], times[i : i + 5000], values[i : i + 5000], strict=True)
            futures = []
            for k, t, v in chunk:
                payload = orjson.dumps({"key": k, "time": float(t), "value": float(v)})
                futures.append(await producer.send(topic, payload, key=k.encode()))
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(keys) / (time.perf_counter() - started)


def service_config(bootstrap: str, topics: dict[str, str], guarantee: Any, batch: int) -> ServiceConfig:
    return ServiceConfig(
        bootstrap_servers=bootstrap,
        input_topic=topics["input"],
        output_topic=topics["output"],
        dead_letter_topic=topics["dlq"],
        changelog_topic=topics["changelog"],
        group_id=f"e2e-{uuid.uuid4().hex[:8]}",
        instance_id="bench",
        guarantee=guarantee,
        max_batch_size=batch,
        max_batch_wait_ms=20,
        max_streams_per_partition=200_000,
        snapshot_every=200,
        metrics_port=0,
    )


async def drain(config: ServiceConfig, weights: ModelWeights, n: int) -> dict[str, Any]:
    """Run the service over a backlog of n events; events/s from the first to the last consumed batch, and the
    CPU split from the start of the service to the last batch."""
    clock = CpuSplit()
    async with Service(config, weights) as service:
        task = asyncio.create_task(service.run())
        consumed = "rnnwatch_events_consumed_total"
        first = None
        while service.metrics.value(consumed) < n:
            if task.done():
                task.result()
            if first is None and service.metrics.value(consumed) > 0:
                first = (time.perf_counter(), service.metrics.value(consumed))
            await asyncio.sleep(0.01)
        end = time.perf_counter()
        split = clock.done()
        service.request_stop()
        await task
    if first is None or first[1] >= n:
        raise BenchError(f"{n:,} events drained between two 10 ms looks: too few to time, pass more --events")
    return {"events_per_s": (n - first[1]) / max(end - first[0], 1e-9), "batches": service.batches, "split": split}


def _noop_producer_factory(bootstrap: str, batch_bytes: int) -> Any:
    """Transactional producers with the service's settings (``Service._make_producer``)."""

    def make(transactional_id: str) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
            max_batch_size=batch_bytes, transactional_id=transactional_id,
        )  # fmt: skip

    return make


async def passthrough(
    bootstrap: str, topics: dict[str, str], n: int, batch: int, *, per_partition: bool
) -> tuple[float, dict[str, float]]:
    """The I/O ceiling: a no-op exactly-once consumer of the same backlog (one small record per event to the
    output topic and the input offsets in the same transaction, ``batch`` events at most per poll, the
    service's consumer and producer settings). Events/s from the first consumed batch to the n-th event, as
    ``drain``.

    ``per_partition``: what the service must do (issue 17's fencing), through the service's own
    ``PartitionProducers`` and publisher: one transactional producer per input partition, its id naming the
    partition, every partition's transaction of a poll at once. Otherwise one producer and one transaction for
    all partitions of a poll (cheaper, but a frozen replica's stale transaction could not be fenced per
    partition): shown for comparison only."""
    group = f"e2e-noop-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        topics["input"], bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_committed", max_partition_fetch_bytes=1 << 20,
    )  # fmt: skip
    make = _noop_producer_factory(bootstrap, producer_batch_bytes([]))
    producers = PartitionProducers(make, group, topics["input"]) if per_partition else None
    single = None if per_partition else make(group)
    clock = CpuSplit()
    if single is not None:
        await single.start()
    await consumer.start()
    done, first, end = 0, None, 0.0
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=50, max_records=batch)
            if not batches:
                continue
            if first is None:
                first = (time.perf_counter(), sum(len(m) for m in batches.values()))
            outputs = {
                tp: ScoreRecords(
                    topics["output"], [m.key for m in messages], [b'{"o":%d}' % m.offset for m in messages]
                )
                for tp, messages in batches.items()
            }
            if producers is not None:
                await producers.acquire(tp.partition for tp in batches)
                await asyncio.gather(
                    *(producers.commit(tp, batches[tp][-1].offset + 1, [], [out]) for tp, out in outputs.items())
                )
            else:
                assert single is not None
                async with single.transaction():
                    await BatchPublisher(single).send_all([], list(outputs.values()))
                    offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items()}
                    await single.send_offsets_to_transaction(offsets, group)
            done += sum(len(m) for m in batches.values())
            end = time.perf_counter()
        split = clock.done()
    finally:
        await consumer.stop()
        if producers is not None:
            await producers.close()
        if single is not None:
            await single.stop()
    if first is None or first[1] >= n:
        raise BenchError(f"{n:,} events passed through in one poll: too few to time, pass more --events")
    return (n - first[1]) / max(end - first[0], 1e-9), split


async def _generate(bootstrap: str, topic: str, streams: int, rate: float, n: int) -> None:
    """Publish n events at ``rate`` events/s, each stamped with its creation time (runs in its own process).

    Every ~2 ms tick the events due so far are created, placed by the default partitioner and handed over as one
    closed batch per partition (``send_batch``), as a well-behaved high-rate producer would: one
    ``producer.send`` per event costs ~20 µs, 40% of a core at 20k events/s, taken from the service."""
    from aiokafka.partitioner import DefaultPartitioner

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        partitioner = DefaultPartitioner()
        names = [f"sensor-{i}" for i in range(streams)]
        placement = [int(partitioner(name.encode(), partitions, partitions)) for name in names]
        started, sent, pending = time.perf_counter(), 0, []
        appended = 0  # events inside a batch handed to the producer: must end equal to n

        async def ship(partition: int, builder: Any) -> None:
            builder.close()
            pending.append(await producer.send_batch(builder, topic, partition=partition))

        while sent < n:
            due = min(n, int((time.perf_counter() - started) * rate) + 1)
            builders: dict[int, Any] = {}
            for j in range(sent, due):
                stream, partition = j % streams, placement[j % streams]
                payload = orjson.dumps({"key": names[stream], "time": time.time(), "value": float(np.sin(j / 50.0))})
                builder = builders.get(partition)
                if builder is None or builder.append(key=names[stream].encode(), value=payload, timestamp=None) is None:
                    if builder is not None:  # full (append returned None): ship it, start the next one
                        await ship(partition, builder)
                    builder = builders[partition] = producer.create_batch()
                    if builder.append(key=names[stream].encode(), value=payload, timestamp=None) is None:
                        raise BenchError(f"one event of {len(payload)} bytes does not fit an empty producer batch")
                appended += 1
            sent = due
            for partition, builder in builders.items():
                await ship(partition, builder)
            pending = [f for f in pending if not f.done()]
            await asyncio.sleep(0.002)
        await asyncio.gather(*pending)  # raises if the broker refused any batch
        if appended != n:
            raise BenchError(f"the generator put {appended:,} of {n:,} events into batches")
    finally:
        await producer.stop()


def _generator_process(bootstrap: str, topic: str, streams: int, rate: float, n: int) -> None:
    asyncio.run(_generate(bootstrap, topic, streams, rate, n))


async def _read_scores(
    bootstrap: str, topic: str, partitions: int, n: int, deadline_s: float, ready: Any, out: str
) -> None:
    """Read n score records (read_committed); save each one's receive time minus its event time (seconds) and
    the input partition and offset it scores (to count duplicates)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed")
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        reader.assign(tps)
        await reader.seek_to_end(*tps)
        for tp in tps:
            await reader.position(tp)  # resolve "end" now, before any score is written
        ready.set()
        latencies: list[float] = []
        sources: list[int] = []
        deadline = time.perf_counter() + deadline_s
        while len(latencies) < n and time.perf_counter() < deadline:
            batch = await reader.getmany(timeout_ms=200)
            now = time.time()
            for records in batch.values():
                for record in records:
                    score = orjson.loads(record.value)
                    latencies.append(now - score["time"])
                    sources.append(score["partition"] << 48 | score["offset"])
        np.savez(out, latencies=np.asarray(latencies, dtype=np.float64), sources=np.asarray(sources, dtype=np.int64))
    finally:
        await reader.stop()


def _reader_process(
    bootstrap: str, topic: str, partitions: int, n: int, deadline_s: float, ready: Any, out: str
) -> None:
    asyncio.run(_read_scores(bootstrap, topic, partitions, n, deadline_s, ready, out))


async def live(
    config: ServiceConfig, weights: ModelWeights, streams: int, partitions: int, rate: float, seconds: float
) -> tuple[list[float], int]:
    """Publish at ``rate`` with creation-time event times while the service runs; return the score records'
    event-to-score latencies (s) as seen by a read_committed consumer, and how many of them were duplicates.

    Generator and reader run in processes of their own: in the service's process the reader would compete with
    the service's event loop (adding latency the service does not cause) and the generator with its CPU."""
    n = int(rate * seconds)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    with tempfile.TemporaryDirectory() as scratch:
        out = str(Path(scratch) / "latencies.npz")
        reader = context.Process(
            target=_reader_process,
            args=(config.bootstrap_servers, config.output_topic, partitions, n, seconds * 5 + 30, ready, out),
        )
        reader.start()
        async with Service(config, weights) as service:
            task = asyncio.create_task(service.run())
            waiting_since = time.perf_counter()
            while service.metrics.value("rnnwatch_assigned_partitions") == 0 or not ready.is_set():
                if task.done() or not reader.is_alive() or time.perf_counter() - waiting_since > 60:
                    reader.terminate()
                    if task.done():
                        task.result()  # the service's own error
                    raise RuntimeError("the service did not get its partitions, or the reader did not start, in 60 s")
                await asyncio.sleep(0.05)
            generator = context.Process(
                target=_generator_process, args=(config.bootstrap_servers, config.input_topic, streams, rate, n)
            )
            generator.start()
            try:
                await asyncio.to_thread(reader.join, seconds * 5 + 60)
            finally:
                await asyncio.to_thread(generator.join, 30)
                service.request_stop()
                await task
        if generator.exitcode != 0:  # its traceback is above; a benchmark that loses its own input proves nothing
            raise BenchError(f"the event generator failed (exit code {generator.exitcode}): input is incomplete")
        if not Path(out).exists():
            raise RuntimeError("the score reader ended without results")
        with np.load(out) as saved:
            latencies, sources = saved["latencies"].tolist(), saved["sources"]
    if len(latencies) < n:
        raise RuntimeError(f"the reader saw {len(latencies)} of {n} score records")
    return latencies, len(sources) - len(np.unique(sources))


async def warm_up(bootstrap: str, weights: ModelWeights, args: argparse.Namespace) -> None:
    """One unmeasured exactly-once drain and no-op pass of ``--warmup-events`` on topics of their own: without
    it the service, measured first, ran on a colder broker than the ceiling after it (the first drain on a
    fresh broker was 20-40 % slower than the next ones, and its broker CPU twice theirs)."""
    n = args.warmup_events
    keys, times, values = make_events(n, args.streams, seed=1)
    topics = await create_topics(bootstrap, args.partitions)
    await publish(bootstrap, topics["input"], keys, times, values)
    await drain(service_config(bootstrap, topics, "exactly_once", args.batch), weights, n)
    await passthrough(bootstrap, topics, n, args.batch, per_partition=True)


async def main_async(args: argparse.Namespace, bootstrap: str) -> None:
    config = ModelConfig(cell=args.cell, hidden_size=args.hidden, n_features=1)
    weights = ModelWeights.random(config, seed=0)
    keys, times, values = make_events(args.events, args.streams)
    rows: list[tuple[str, float]] = []
    splits: list[str] = []  # CPU per phase: service process and local broker
    base = baseline(weights, keys, times, values, args.batch)
    rows.append(("baseline Detector.step (no Kafka)", base))
    result: dict[str, Any] = {"baseline_eps": round(base)}
    if args.warmup_events:  # a fresh broker's JVM compiles its transactional paths during the first passes
        await warm_up(bootstrap, weights, args)
    for guarantee in args.guarantees.split(","):
        topics = await create_topics(bootstrap, args.partitions)
        publish_rate = await publish(bootstrap, topics["input"], keys, times, values)
        rows.append((f"publish input ({guarantee} run)", publish_rate))
        drained = await drain(service_config(bootstrap, topics, guarantee, args.batch), weights, args.events)
        rows.append((f"service backlog drain, {guarantee}", drained["events_per_s"]))
        if guarantee != "exactly_once":
            splits.append(f"service drain, {guarantee}: {describe_split(drained['split'])}")
        result[f"{guarantee}_eps"] = round(drained["events_per_s"])
        if guarantee == "exactly_once":  # the same backlog through a consumer that does nothing but EOS I/O
            ceiling, ceiling_split = await passthrough(bootstrap, topics, args.events, args.batch, per_partition=True)
            rows.append(("no-op EOS pass-through, per partition (ceiling)", ceiling))
            single, _ = await passthrough(bootstrap, topics, args.events, args.batch, per_partition=False)
            rows.append(("no-op EOS pass-through, one producer (info)", single))
            result["noop_eos_eps"] = round(ceiling)
            result["noop_eos_one_producer_eps"] = round(single)
            result["eos_of_ceiling"] = round(drained["events_per_s"] / ceiling, 2)
            splits.append(f"service drain, {guarantee}: {describe_split(drained['split'])}")
            splits.append(f"no-op EOS pass-through, per partition: {describe_split(ceiling_split)}")
            for name, split in (("eos", drained["split"]), ("noop", ceiling_split)):
                result.update({f"{name}_{key}": round(value, 2) for key, value in split.items()})
    lines = []
    for guarantee in args.guarantees.split(","):
        topics = await create_topics(bootstrap, args.partitions)
        latencies, duplicates = await live(
            service_config(bootstrap, topics, guarantee, args.batch),
            weights,
            args.streams,
            args.partitions,
            args.rate,
            args.live_seconds,
        )
        p50, p99 = (float(np.percentile(latencies, q)) for q in (50, 99))
        lines.append(
            f"live {guarantee} at {args.rate:,.0f} events/s: event-to-score latency p50 {p50 * 1e3:.1f} ms, "
            f"p99 {p99 * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms over {len(latencies)} events, "
            f"{duplicates} duplicates"
        )
        result[f"{guarantee}_live_p50_ms"] = round(p50 * 1e3, 1)
        result[f"{guarantee}_live_p99_ms"] = round(p99 * 1e3, 1)
        result[f"{guarantee}_live_duplicates"] = duplicates
    print(f"\ncpu: {cpu_model()}")
    print(f"{'phase':<45}{'events/s':>12}")
    for name, eps in rows:
        print(f"{name:<45}{eps:>12,.0f}")
    print()
    print("\n".join(splits))
    print("\n".join(lines))
    print("details " + " ".join(f"{k}={v}" for k, v in result.items()))
    # The summary line: backlog throughput per guarantee, latency of the exactly-once live phase.
    eos, alo = result.get("exactly_once_eps", "nan"), result.get("at_least_once_eps", "nan")
    p50, p99 = result.get("exactly_once_live_p50_ms", "nan"), result.get("exactly_once_live_p99_ms", "nan")
    ceiling, share = result.get("noop_eos_eps", "nan"), result.get("eos_of_ceiling", "nan")
    print(
        f"RESULT eos_events_per_s={eos} alo_events_per_s={alo} p50_ms={p50} p99_ms={p99} "
        f"noop_eos_events_per_s={ceiling} eos_of_ceiling={share}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=None, help="existing broker host:port (default: start a local one)")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16384, help="max_batch_size of the service")
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--guarantees", default="at_least_once,exactly_once")
    parser.add_argument("--rate", type=float, default=20000.0, help="live phase events/s")
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument("--warmup-events", type=int, default=100_000, help="unmeasured passes first (0: none)")
    args = parser.parse_args()
    if args.bootstrap:
        asyncio.run(main_async(args, args.bootstrap))
        return
    from stream.local_broker import LocalBroker

    with tempfile.TemporaryDirectory() as run_dir, LocalBroker(run_dir=run_dir) as broker:
        assert broker.bootstrap is not None
        pid_file = Path(run_dir) / "broker.pid"
        CpuSplit.broker_pid = int(pid_file.read_text()) if pid_file.exists() else None
        asyncio.run(main_async(args, broker.bootstrap))


if __name__ == "__main__":
    main()
