"""Scoring one micro-batch partition by partition, with the event loop's I/O let through between partitions.

The loop runs every producer's sender: exactly-once, each partition's transaction is a chain of round trips
(AddPartitionsToTxn, produce requests, AddOffsetsToTxn, TxnOffsetCommit, EndTxn), and each link starts only
when the loop handles the previous one's response. Scored in one piece, a 16k-event batch held the loop for
50-100 ms, and the previous batch's transaction made no progress meanwhile: its first request left only after
the next batch was scored, so publishing and scoring ran nearly one after the other (issue 15's profile).
Between two partitions the loop now turns ``LOOP_TURNS`` times, enough for a response to be read and the next
request of that chain to be written (a handful of callbacks, each one turn).

A worker thread for the scoring was tried and dropped: on the shared 2-core machine the GIL hand-offs made the
scoring 2-3x slower and the backlog drain 10-25 % slower than this (same run, alternating).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition

from stream.service.partition import BatchOutcome, PartitionProcessor

LOOP_TURNS = 10  # loop iterations between two partitions: ~10 µs each when nothing is ready

Work = Sequence[tuple[TopicPartition, PartitionProcessor, Sequence[Any]]]


async def score_partitions(work: Work) -> dict[TopicPartition, BatchOutcome]:
    """Each partition's messages through its processor, the loop let run before each; the outcomes that
    consumed anything, their changelog records not yet added (``PartitionProcessor.finish``)."""
    outcomes: dict[TopicPartition, BatchOutcome] = {}
    for tp, processor, messages in work:
        await let_io_run()
        outcome = processor.process(messages, finish=False)  # the caller finishes it, maybe merged with the next
        if outcome.consumed:
            outcomes[tp] = outcome
    return outcomes


async def let_io_run(turns: int = LOOP_TURNS) -> None:
    """Give the event loop ``turns`` iterations (pending callbacks, ready sockets) before going on."""
    for _ in range(turns):
        await asyncio.sleep(0)
