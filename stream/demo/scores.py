"""Read the service's score records back from the output topic (read_committed), for the demo's report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from stream.service.codec import decode_score


@dataclass(frozen=True)
class ScorePoint:
    """What the service said about one event: its score, flag and forecast of the stream's next value."""

    score: float
    anomaly: bool
    mean: float | None
    scale: float | None


@dataclass
class ScoreBook:
    """Score records by (stream key, event time), filled while the demo runs."""

    points: dict[tuple[str, float], ScorePoint] = field(default_factory=dict)
    anomalies: int = 0

    def add(self, record: dict[str, object]) -> None:
        """Keep one decoded score record (the first value of a vector forecast is plotted)."""
        mean, scale = record.get("mean"), record.get("scale")
        if isinstance(mean, list):
            mean = mean[0]
        if isinstance(scale, list):
            scale = scale[0]
        point = ScorePoint(
            score=float(record["score"]),  # type: ignore[arg-type]
            anomaly=bool(record["anomaly"]),
            mean=None if mean is None else float(mean),  # type: ignore[arg-type]
            scale=None if scale is None else float(scale),  # type: ignore[arg-type]
        )
        self.points[(str(record["key"]), float(record["time"]))] = point  # type: ignore[arg-type]
        self.anomalies += point.anomaly

    def flags(self) -> dict[tuple[str, float], bool]:
        """(key, time) -> anomaly flag."""
        return {k: p.anomaly for k, p in self.points.items()}


async def collect_scores(bootstrap: str, topic: str, book: ScoreBook, stop: asyncio.Event) -> None:
    """Consume the score topic from the start into ``book`` until ``stop`` is set and the topic is drained."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        idle_after_stop = 0
        while idle_after_stop < 3:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for messages in batches.values():
                for message in messages:
                    if message.value is not None:
                        book.add(decode_score(message.value))
            if stop.is_set():
                idle_after_stop = 0 if batches else idle_after_stop + 1
    finally:
        await consumer.stop()
