"""A stop that ends in time: one deadline for the whole shutdown, and closing steps that cannot outlive it.

aiokafka's own ``stop()`` calls wait for the broker (pending batches, LeaveGroup, EndTxn of an open transaction),
so while it is unreachable a SIGTERM hung, and aiokafka 0.14's fetcher re-raises the CancelledError of a fetch task
it cancels out of ``consumer.stop()`` (exit 1 with its traceback). Each step runs as a task of its own under the
deadline: one that does not finish is cancelled and abandoned with one warning line, a stray CancelledError is that
step's outcome, never the caller's. The futures an abandoned client leaves fail with a KafkaError nobody awaits;
``quiet_abandoned_futures`` keeps asyncio from logging each with its traceback when it is collected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from aiokafka.errors import KafkaError

logger = logging.getLogger(__name__)

MIN_STEP_SECONDS = 0.5  # a closing step still gets this long once the deadline has passed (closes sockets)


class ShutdownClock:
    """The shutdown deadline: ``seconds`` after the first ``start()`` (the stop request)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline: float | None = None

    def start(self) -> None:
        """Start the clock (idempotent: the first call counts; signal-handler safe)."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.seconds

    def remaining(self, floor: float = 0.0) -> float:
        """Seconds left before the deadline (the whole timeout before ``start``), at least ``floor``."""
        left = self.seconds if self.deadline is None else self.deadline - time.monotonic()
        return max(floor, left)


async def close_within(what: str, closing: Awaitable[Any], seconds: float) -> bool:
    """Run ``closing`` for at most ``seconds``; returns whether it completed. A step that times out is cancelled and
    abandoned (warning), one that fails or ends in a CancelledError of the library's own is logged (debug for the
    CancelledError): neither reaches the caller, so the remaining steps still run."""
    task = asyncio.ensure_future(closing)
    task.add_done_callback(_retrieve)
    done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    if not done:
        task.cancel()
        logger.warning("%s did not close within %.1f s (is the broker reachable?); abandoned", what, seconds)
        return False
    if task.cancelled():
        logger.debug("%s: the client library's close ended in a CancelledError of its own", what)
        return False
    error = task.exception()
    if error is not None:
        logger.error("error while closing %s: %s: %s", what, type(error).__name__, error)
        return False
    return True


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of an abandoned step as seen (asyncio would log it with its traceback when collected)."""
    if not task.cancelled():
        task.exception()


def quiet_abandoned_futures(loop: asyncio.AbstractEventLoop) -> None:
    """From now on, log a KafkaError that no one retrieved from a future (an abandoned client's batch or request)
    as one debug line instead of asyncio's error with a traceback; everything else goes to the previous handler."""
    previous = loop.get_exception_handler()
    if getattr(previous, "quiets_abandoned_futures", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), KafkaError) and "never retrieved" in str(context.get("message")):
            logger.debug("after the stop, an abandoned Kafka client's future failed: %s", context["exception"])
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.quiets_abandoned_futures = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
