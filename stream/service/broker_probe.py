"""Readiness that sees the broker: a probe of the Kafka connection, and aiokafka's error lines rate-limited.

During a broker outage ``getmany`` just returns nothing, so the loop looked healthy and ``/readyz`` said 200
while aiokafka logged ~65 connection errors a second. ``BrokerProbe`` sends a metadata request (no topics) to
each known broker every ``interval`` seconds and marks readiness down (with the reason) until one answers within
``answer_seconds``. A round trip, not a connection check: across a black-hole partition (packets dropped, no
reset) the open connections still look connected, and only a request left unanswered shows the cut.
``RateLimitFilter`` lets each distinct aiokafka message through once per ``every`` seconds and says how many
copies it held back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from stream.service.health import HealthState

logger = logging.getLogger(__name__)


class BrokerProbe:
    """Marks ``health`` broker-unreachable while no broker of ``client`` (an ``AIOKafkaClient``) answers."""

    def __init__(
        self, client: Any, health: HealthState, bootstrap: str, interval: float = 1.0, answer_seconds: float = 3.0
    ) -> None:
        self.client = client
        self.health = health
        self.bootstrap = bootstrap
        self.interval = interval
        self.answer_seconds = answer_seconds
        self._down_since: float | None = None

    async def reachable(self) -> bool:
        """Whether any broker in the cluster metadata answers a metadata request within ``answer_seconds``."""
        nodes = [broker.nodeId for broker in self.client.cluster.brokers()]
        for node in nodes:
            try:
                async with asyncio.timeout(self.answer_seconds):
                    await self.client.send(node, MetadataRequest([]))
                return True
            except (TimeoutError, KafkaError):
                continue
        return False

    async def run(self) -> None:
        """Probe until cancelled."""
        while True:
            up = await self.reachable()
            if up and self._down_since is not None:
                logger.warning(
                    "Kafka at %s reachable again after %.0f s", self.bootstrap, time.monotonic() - self._down_since
                )
                self._down_since = None
                self.health.set_broker_down(None)
            elif not up:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    logger.error(
                        "Kafka at %s unreachable: no broker answered within %g s", self.bootstrap, self.answer_seconds
                    )
                self.health.set_broker_down(
                    f"Kafka at {self.bootstrap} unreachable for {time.monotonic() - self._down_since:.0f} s"
                )
            await asyncio.sleep(self.interval)


class RateLimitFilter(logging.Filter):
    """Passes each distinct (logger, message template) at most once per ``every`` seconds."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # -> (last passed, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, held = self._last.get(key, (-float("inf"), 0))
        if now - last < self.every:
            self._last[key] = (last, held + 1)
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = (now, 0)
        if held and (record.args is None or isinstance(record.args, tuple)):
            record.msg = f"{record.msg} (and %d more like it in the last %.0f s)"
            record.args = (*(record.args or ()), held, now - last)
        return True


def rate_limit_aiokafka_logs(every: float = 10.0) -> RateLimitFilter:
    """Install one ``RateLimitFilter`` on every aiokafka logger (a logger's filter does not see its children's
    records, so each gets it); returns it, for ``remove_filter``."""
    flt = RateLimitFilter(every)
    for name in ["aiokafka", *logging.root.manager.loggerDict]:
        if name == "aiokafka" or name.startswith("aiokafka."):
            logging.getLogger(name).addFilter(flt)
    return flt


def remove_filter(flt: logging.Filter) -> None:
    """Undo ``rate_limit_aiokafka_logs``."""
    for name in ["aiokafka", *logging.root.manager.loggerDict]:
        if name == "aiokafka" or name.startswith("aiokafka."):
            logging.getLogger(name).removeFilter(flt)
