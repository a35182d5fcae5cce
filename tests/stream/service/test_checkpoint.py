"""The batch in flight without a broker: fenced partitions are reported and left out of what is counted, any
other failure is raised once every partition's transaction has ended, and an abandoned batch is cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from stream.errors import PartitionFencedError
from stream.service.checkpoint import Checkpointer
from stream.service.metrics import ServiceMetrics
from stream.service.partition import BatchOutcome, OutRecord
from tests.kafka_helpers import run_sync


class _Transactions:
    """Stands in for PartitionProducers: partition 1 is fenced, partition 2 fails, others commit."""

    def __init__(self, hang: bool = False) -> None:
        self.committed: list[int] = []
        self.hang = hang

    async def commit(self, tp: TopicPartition, next_offset: int, records: Any, scores: Any) -> None:
        await asyncio.sleep(3600 if self.hang else 0.01)
        if tp.partition == 1:
            raise PartitionFencedError(1, "rnnwatch-g-t-1")
        if tp.partition == 2:
            raise OSError("broker gone")
        self.committed.append(tp.partition)


def _outcomes(*partitions: int) -> dict[TopicPartition, BatchOutcome]:
    changelog = [OutRecord("log", b"k", b"v", partition=0)]
    return {TopicPartition("in", p): BatchOutcome([], next_offset=10 + p, changelog=changelog) for p in partitions}


def test_fenced_partitions_are_reported_and_not_counted() -> None:
    seen: list[dict[TopicPartition, BatchOutcome]] = []
    txn = _Transactions()
    checkpoint = Checkpointer(ServiceMetrics(), lambda o, s: seen.append(o), txn=txn)  # type: ignore[arg-type]

    async def scenario() -> set[int]:
        checkpoint.start(_outcomes(0, 1, 3), 0.0)
        assert checkpoint.in_flight
        return await checkpoint.wait()

    assert run_sync(scenario()) == {1}
    assert not checkpoint.in_flight
    assert sorted(txn.committed) == [0, 3] and [sorted(tp.partition for tp in o) for o in seen] == [[0, 3]]


def test_another_failure_is_raised_after_every_transaction_ended_and_counted() -> None:
    metrics, txn = ServiceMetrics(), _Transactions()
    checkpoint = Checkpointer(metrics, lambda o, s: None, txn=txn)  # type: ignore[arg-type]

    async def scenario() -> None:
        checkpoint.start(_outcomes(0, 2), 0.0)
        await checkpoint.wait()

    with pytest.raises(OSError, match="broker gone"):
        run_sync(scenario())
    assert txn.committed == [0]
    assert metrics.value("rnnwatch_checkpoint_failures_total") == 1


def test_an_abandoned_batch_is_cancelled_within_the_given_time() -> None:
    seen: list[Any] = []
    checkpoint = Checkpointer(ServiceMetrics(), lambda o, s: seen.append(o), txn=_Transactions(hang=True))  # type: ignore[arg-type]

    async def scenario() -> float:
        checkpoint.start(_outcomes(0), 0.0)
        started = asyncio.get_running_loop().time()
        await checkpoint.abandon(5.0)
        return asyncio.get_running_loop().time() - started

    assert run_sync(scenario()) < 5.0
    assert not checkpoint.in_flight and seen == []


def test_at_least_once_needs_a_producer_and_the_consumer() -> None:
    with pytest.raises(ValueError, match="needs the transactional producers"):
        Checkpointer(ServiceMetrics(), lambda o, s: None)
