"""Exactly-once fencing without KIP-447: one transactional producer per input partition, its id tied to it.

aiokafka 0.14's ``send_offsets_to_transaction`` sends TxnOffsetCommit without the group generation, so the
broker cannot reject the offsets of a replica that froze past its session timeout and lost its partitions.
What it always checks is the producer epoch of a transactional id. With the id derived from the input
partition (``rnnwatch-<group>-<topic>-<partition>``, as Kafka Streams did before KIP-447), the id moves with
the partition: the new owner starts a producer with it (InitProducerId), which bumps the epoch, aborts any
transaction the previous owner left open and returns only once that abort (or a commit already under way) is
complete. From then on every produce, offset commit and EndTxn of the old owner fails with ProducerFenced.

So the owner must acquire the partition's producer *before* it reads the committed offset and the changelog:
it then sees every transaction of the previous owner either committed or aborted, and no later one can commit.
``acquire`` does that; a fenced commit raises ``PartitionFencedError`` so that the caller drops the partition
(another replica owns it now) instead of stopping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from stream.errors import PartitionFencedError
from stream.service.partition import OutRecord, ScoreRecords
from stream.service.publisher import BatchPublisher

logger = logging.getLogger(__name__)

ProducerFactory = Callable[[str], AIOKafkaProducer]
_FENCED = (ProducerFenced, InvalidProducerEpoch)


def transactional_id_for(group_id: str, topic: str, partition: int | str) -> str:
    """The transactional id of an input partition: the same on every replica, so its owner fences the previous
    (``partition="*"`` gives the pattern, for ACLs and logs)."""
    return f"rnnwatch-{group_id}-{topic}-{partition}"


class _Held:
    """One partition's started producer and the publisher that batches its sends."""

    def __init__(self, producer: AIOKafkaProducer, transactional_id: str) -> None:
        self.producer = producer
        self.transactional_id = transactional_id
        self.publisher = BatchPublisher(producer)


class PartitionProducers:
    """The transactional producers of the input partitions this replica owns (exactly-once mode)."""

    def __init__(self, make_producer: ProducerFactory, group_id: str, input_topic: str) -> None:
        self._make_producer = make_producer
        self._group_id = group_id
        self._topic = input_topic
        self._held: dict[int, _Held] = {}

    @property
    def partitions(self) -> set[int]:
        """The input partitions with a started producer."""
        return set(self._held)

    async def acquire(self, partitions: Iterable[int]) -> None:
        """Start a producer for every partition not held yet, all at once; each start fences the partition's
        previous owner and completes its open transaction. Raises the first failure (after closing the others)."""
        wanted = sorted(set(partitions) - set(self._held))
        if not wanted:
            return
        started_at = time.perf_counter()
        ids = [transactional_id_for(self._group_id, self._topic, p) for p in wanted]
        producers = [self._make_producer(tid) for tid in ids]
        started = await asyncio.gather(*(producer.start() for producer in producers), return_exceptions=True)
        failure = next((r for r in started if isinstance(r, BaseException)), None)
        if failure is not None:
            await asyncio.gather(*(_stop(p, tid) for p, tid in zip(producers, ids, strict=True)))
            raise failure
        for partition, producer, tid in zip(wanted, producers, ids, strict=True):
            self._held[partition] = _Held(producer, tid)
        logger.info(
            "fenced earlier owners of partitions %s in %.3f s (transactional ids %s)",
            wanted,
            time.perf_counter() - started_at,
            ids,
        )

    async def release(self, partitions: Iterable[int]) -> None:
        """Stop the producers of these partitions (the caller drained their transactions: nothing is open)."""
        dropped = [self._held.pop(p) for p in set(partitions) if p in self._held]
        await asyncio.gather(*(_stop(h.producer, h.transactional_id) for h in dropped))

    async def close(self) -> None:
        """Stop every producer (idempotent)."""
        await self.release(list(self._held))

    async def commit(
        self, tp: TopicPartition, next_offset: int, records: Sequence[OutRecord], scores: Sequence[ScoreRecords]
    ) -> None:
        """Publish one partition's batch and its next input offset in one transaction of that partition's producer.

        Raises ``PartitionFencedError`` when another replica's producer took the id over (the transaction is
        aborted, nothing of it is visible), ``KeyError`` when the partition is not held."""
        held = self._held[tp.partition]
        producer = held.producer
        try:
            async with producer.transaction():
                # Records first, offsets after they are written: adding the offsets while a produce request is in
                # flight makes Kafka 4's transaction verification reject it (retried only after retry_backoff_ms).
                await held.publisher.send_all(records, scores)
                await producer.send_offsets_to_transaction({tp: next_offset}, self._group_id)
        except _FENCED as error:
            _retrieve_fencing_error(producer)
            raise PartitionFencedError(tp.partition, held.transactional_id) from error


async def _stop(producer: AIOKafkaProducer, transactional_id: str) -> None:
    try:
        await producer.stop()
    except Exception:  # closing must go on for the other producers
        logger.exception("error while stopping producer %s", transactional_id)


def _retrieve_fencing_error(producer: AIOKafkaProducer) -> None:
    """Mark the copies of the error aiokafka also left in futures nobody awaits once the producer is fenced (its
    transaction waiter, each failed batch's drain waiter) as seen. Otherwise asyncio logs each with its traceback
    when a collection finds it, and on CPython 3.11 that logging, run by a collection in the middle of an
    ``ast.parse`` (pytest's assertion rewriting, traceback carets), breaks the parser ("AST constructor
    recursion depth mismatch"). Private attributes, read defensively: a no-op if aiokafka renames them."""
    waiters = [getattr(getattr(producer, "_txn_manager", None), "_transaction_waiter", None)]
    accumulator = getattr(producer, "_message_accumulator", None)
    batches = [b for queue in getattr(accumulator, "_batches", {}).values() for b in queue]
    batches += list(getattr(accumulator, "_pending_batches", ()))
    waiters += [getattr(batch, "_drain_waiter", None) for batch in batches]
    for waiter in waiters:
        if isinstance(waiter, asyncio.Future) and waiter.done() and not waiter.cancelled():
            waiter.exception()
