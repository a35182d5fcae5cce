"""Start one Kafka client for a command (send, tail, topics), with a failed start explained and cleaned up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.service.config import ServiceConfig


async def start_client(
    config: ServiceConfig, start: Callable[[], Awaitable[object]], close: Callable[[], Awaitable[object]]
) -> None:
    """``await start()`` under the connection errors' explanation (a bad password or certificate: say which); a
    client that failed to start still holds connections and tasks, so ``close`` runs before the error goes on."""
    from stream.service.connection import explained_connection_errors

    async with explained_connection_errors(config):
        try:
            await start()
        except BaseException:
            await close()
            raise
