"""A synthetic sensor fleet published to Kafka in real time, for the demo and end-to-end benchmarks.

Each stream of an ``stream.data.synthetic`` fleet is replayed event by event, round-robin over the streams, at a
fixed total rate; every event is stamped with the wall-clock time at which it is sent, so event-time-to-score
latency is real. ``FleetTruth`` remembers what was sent, so flagged events can be checked against the
injected anomalies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer

from stream.data.synthetic import SyntheticFleet

logger = logging.getLogger(__name__)


@dataclass
class FleetTruth:
    """What was sent: per stream key, the (event time, index into the synthetic stream) of each event in order.

    The index leads back to the stream's value and injected-anomaly label, so scores read back from Kafka
    (keyed by stream key and event time) can be compared with the truth.
    """

    sent_events: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    sent: int = 0

    def record(self, key: str, event_time: float, index: int) -> None:
        """Remember that event ``index`` of stream ``key`` was sent stamped ``event_time``."""
        self.sent_events.setdefault(key, []).append((event_time, index))
        self.sent += 1


def encode_event(key: str, event_time: float, values: tuple[float, ...] | list[float]) -> bytes:
    """One event in the service's JSON schema: a scalar "value" for one feature, else "values"."""
    if len(values) == 1:
        return orjson.dumps({"key": key, "time": event_time, "value": values[0]})
    return orjson.dumps({"key": key, "time": event_time, "values": list(values)})


async def publish_fleet(
    producer: AIOKafkaProducer,
    topic: str,
    fleet: SyntheticFleet,
    *,
    rate: float,
    stop: asyncio.Event,
    truth: FleetTruth | None = None,
    on_progress: Callable[[int], None] | None = None,
    start: int = 0,
) -> int:
    """Send the fleet's events from index ``start`` of every stream (the events before it are the history a model
    was trained on) at ``rate`` events/s (round-robin over streams) until done or ``stop`` is set.

    Sends go out in ticks of 10 ms, each awaited as one batch, so a slow broker slows the fleet instead of
    growing an unbounded queue. Returns the number of events sent.
    """
    streams = fleet.streams
    length = min(len(s.times) for s in streams) - start
    total = max(length, 0) * len(streams)
    tick = 0.01
    per_tick = max(1.0, rate * tick)
    sent = 0
    carry = 0.0
    started = time.monotonic()
    while sent < total and not stop.is_set():
        carry += per_tick
        n = min(int(carry), total - sent)
        carry -= n
        futures = []
        now = time.time()
        for j in range(sent, sent + n):
            stream = streams[j % len(streams)]
            index = start + j // len(streams)
            values = tuple(float(v) for v in stream.values[index])
            key = stream.key
            futures.append(await producer.send(topic, encode_event(key, now, values), key=key.encode()))
            if truth is not None:
                truth.record(key, now, index)
            now = now + 1e-6  # distinct event times within one tick keep (key, time) unique
        if futures:
            await asyncio.gather(*futures)
        sent += n
        if on_progress is not None:
            on_progress(sent)
        target = started + (sent / rate)
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    logger.info("fleet sent %d events to %s", sent, topic)
    return sent
