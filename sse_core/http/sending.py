"""How long one write to an SSE client may wait before the connection is given up.

A client that stops reading (a frozen tab, a stalled proxy, an attacker) makes the server's
write wait forever: Tornado's ``flush()`` and an ASGI ``send()`` have no timeout of their own.
Both adapters therefore put every write that has to wait under one :class:`SendDeadline`: it
may wait at most ``SSE_SEND_TIMEOUT_SECONDS``, and never past the token's expiry (a stream must
not outlive its credential even while blocked in a write). (Tornado's adapter skips it when the
socket took the whole write at once: there is nothing to wait for, and a timer per write per
connection was most of a broadcast's cost with thousands of connections.) When it runs out,
the adapter closes the connection; the client, if it is alive after all, reconnects with
``Last-Event-ID`` and loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


class SendDeadline:
    """The budget of each write on one connection: ``timeout`` seconds, cut at ``expires_at``."""

    def __init__(
        self,
        timeout: float,
        expires_at: float | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.timeout = timeout
        self.expires_at = expires_at
        self._clock = clock

    def budget(self) -> float:
        """Seconds the next write may wait (0 once the token has expired)."""
        if self.expires_at is None:
            return self.timeout
        return max(0.0, min(self.timeout, self.expires_at - self._clock()))

    async def send(self, write: Awaitable[Any]) -> bool:
        """Await ``write``: ``True`` once the client took it, ``False`` if the budget ran out.

        On ``False`` the write has been cancelled and the caller must close the connection
        (its buffers still hold what the client never took). Errors of the write propagate.
        """
        future = asyncio.ensure_future(write)
        try:
            done, _ = await asyncio.wait({future}, timeout=self.budget())
        except asyncio.CancelledError:  # the client hung up meanwhile: drop the write too
            future.cancel()
            raise
        if done:
            future.result()
            return True
        future.cancel()
        await asyncio.gather(future, return_exceptions=True)
        return False
