"""The batch in flight: one micro-batch's outcomes published and committed while the next one is scored.

Exactly-once: per input partition, its score records, dead letters, changelog records and next input offset in
one transaction of that partition's own producer (``stream.service.fencing``), all partitions at once; a
partition whose producer was fenced is reported, not raised. At-least-once: outputs sent and acknowledged, then
the changelog, then the offsets committed. At most one batch is in flight; ``wait`` hands its outcome to the
service, which decides what a failure or a fenced partition means (split out of ``stream.service.app``, issue 13).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.errors import PartitionFencedError
from stream.service.fencing import PartitionProducers
from stream.service.metrics import ServiceMetrics
from stream.service.partition import BatchOutcome
from stream.service.publisher import BatchPublisher

Outcomes = dict[TopicPartition, BatchOutcome]
OnCommitted = Callable[[Outcomes, float], None]  # the committed (not fenced) outcomes, seconds since scoring began


class Checkpointer:
    """Publishes one batch at a time through the partitions' transactional producers (``txn``) or, at-least-once,
    through ``producer`` and ``consumer.commit``; ``on_committed`` counts and archives what was committed."""

    def __init__(
        self,
        metrics: ServiceMetrics,
        on_committed: OnCommitted,
        *,
        txn: PartitionProducers | None = None,
        producer: AIOKafkaProducer | None = None,
        consumer: AIOKafkaConsumer | None = None,
    ) -> None:
        if txn is None and (producer is None or consumer is None):
            raise ValueError("a Checkpointer needs the transactional producers, or a producer and the consumer")
        self.metrics = metrics
        self._on_committed = on_committed
        self._txn = txn
        self._producer = producer
        self._consumer = consumer
        self._publisher: BatchPublisher | None = None
        self._inflight: asyncio.Task[set[int]] | None = None  # its result: the partitions found fenced

    @property
    def in_flight(self) -> bool:
        """Whether a batch is being published."""
        return self._inflight is not None

    @property
    def busy(self) -> bool:
        """Whether a batch is being published and has not ended yet (``wait`` would wait)."""
        return self._inflight is not None and not self._inflight.done()

    def start(self, outcomes: Outcomes, started: float) -> None:
        """Start publishing a batch (the previous one must have been waited for)."""
        assert self._inflight is None, "wait() for the batch in flight first"
        self._inflight = asyncio.create_task(self._publish_and_count(outcomes, started))

    async def wait(self) -> set[int]:
        """Wait for the batch in flight (none: returns at once); returns the partitions found fenced and raises
        what failed otherwise. A caller cancelled while waiting (a stop cut short) leaves the batch in flight,
        running, for ``abandon``: cancelling it here would wait on its transaction's abort, i.e. on the broker."""
        inflight = self._inflight
        if inflight is None:
            return set()
        try:
            return await asyncio.shield(inflight)
        finally:
            if inflight.done() and self._inflight is inflight:
                self._inflight = None

    async def abandon(self, seconds: float) -> None:
        """Cancel the batch in flight and give it ``seconds`` to end (its transaction is never committed: the
        partitions' next owner aborts it)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.cancel()
            await asyncio.wait({inflight}, timeout=seconds)

    async def _publish_and_count(self, outcomes: Outcomes, started: float) -> set[int]:
        """Publish a batch, then hand what was committed to ``on_committed``; returns the partitions found fenced."""
        try:
            fenced = await self._publish(outcomes)
        except Exception:
            if any(outcome.changelog for outcome in outcomes.values()):
                self.metrics.checkpoint_failures.inc()
            raise
        committed = {tp: outcome for tp, outcome in outcomes.items() if tp.partition not in fenced}
        if committed:
            self._on_committed(committed, time.perf_counter() - started)
        return fenced

    async def _publish(self, outcomes: Outcomes) -> set[int]:
        """Publish every partition's outcome; returns the partitions whose transaction was fenced (exactly-once:
        one transaction per partition, all at once; any other failure is raised once all have ended)."""
        if self._txn is not None:
            txn = self._txn
            results: list[Any] = await asyncio.gather(
                *(
                    txn.commit(
                        tp, o.next_offset, [*o.dead_letters, *o.changelog], [] if o.scores is None else [o.scores]
                    )
                    for tp, o in outcomes.items()
                ),
                return_exceptions=True,
            )
            fenced = {r.partition for r in results if isinstance(r, PartitionFencedError)}
            failure = next(
                (r for r in results if isinstance(r, BaseException) and not isinstance(r, PartitionFencedError)), None
            )
            if failure is not None:
                raise failure
            return fenced
        producer, consumer = self._producer, self._consumer
        assert producer is not None and consumer is not None
        offsets = {tp: outcome.next_offset for tp, outcome in outcomes.items()}
        scores = [outcome.scores for outcome in outcomes.values() if outcome.scores is not None]
        publisher = BatchPublisher(producer) if self._publisher is None else self._publisher
        self._publisher = publisher
        await publisher.send_all([r for outcome in outcomes.values() for r in outcome.dead_letters], scores)
        await publisher.send_all([r for outcome in outcomes.values() for r in outcome.changelog])
        await consumer.commit(offsets)
        return set()
