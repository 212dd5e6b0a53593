"""One view's subscription: a consumer task that only feeds a :class:`LiveState`.

Switching user, categories or window cancels the consumer and starts a fresh one on a fresh
state; the view's periodic flush reads ``state`` and never waits on Redis. Cancelled consumers
are kept until they have unwound (their ``stream()`` detaches from the shared hub), so
:meth:`LiveStream.aclose` can wait for every subscription to be released.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from dashboard.state import LiveState
from dashboard.telemetry import Telemetry
from sse_core import RedisSSESubscriber, epoch_ms

log = logging.getLogger(__name__)


class LiveStream:
    """The current subscription of one view (or none), and the state it fills."""

    def __init__(self, telemetry: Telemetry, *, feed_rows: int, keep: int, window: int) -> None:
        self._telemetry = telemetry
        self._feed_rows = feed_rows
        self._keep = keep
        self.state = self._new_state(window, float(epoch_ms()))
        self.subscriber: RedisSSESubscriber | None = None
        self.failure: str | None = None  # why the consumer stopped, for the view's notice
        self._consumer: asyncio.Task[None] | None = None
        self._stopping: list[asyncio.Task[None]] = []  # cancelled consumers still unwinding

    def _new_state(self, window: int, live_from_ms: float) -> LiveState:
        return LiveState(
            feed_size=self._feed_rows,
            keep=self._keep,
            window_seconds=window,
            live_from_ms=live_from_ms,
        )

    @property
    def running(self) -> bool:
        return self._consumer is not None and not self._consumer.done()

    def reset(self, window: int) -> None:
        """Cancel the current subscription and start over on an empty state."""
        self.cancel()
        self.state = self._new_state(window, float(epoch_ms()))
        self.failure = None

    def start(
        self, subscriber: RedisSSESubscriber, user_id: UUID, categories: list[str] | None
    ) -> None:
        """Consume ``user_id``'s stream into the (fresh) state, back-filled from retention.

        One bounded read of the state's window from retention, then live, with the core's
        hand-over (no event counted twice): ``stream(since_ms=...)`` does both.
        """
        self.subscriber = subscriber
        self._telemetry.attach(subscriber)
        state = self.state
        since_ms = int(state.window_start_ms)
        self._consumer = asyncio.get_running_loop().create_task(
            self._consume(subscriber, state, user_id, categories, since_ms),
            name=f"ssewatch-dashboard-{user_id}",
        )

    def cancel(self) -> None:
        if self.subscriber is not None:
            self._telemetry.retire(self.subscriber)
            self.subscriber = None
        if self._consumer is not None:
            self._consumer.cancel()  # stream()'s finally detaches from the shared hub
            self._stopping = [t for t in self._stopping if not t.done()] + [self._consumer]
            self._consumer = None

    async def aclose(self) -> None:
        """:meth:`cancel`, then wait until every cancelled consumer has unwound."""
        self.cancel()
        stopping, self._stopping = self._stopping, []
        await asyncio.gather(*stopping, return_exceptions=True)

    async def _consume(
        self,
        subscriber: RedisSSESubscriber,
        state: LiveState,
        user_id: UUID,
        categories: list[str] | None,
        since_ms: int,
    ) -> None:
        add = state.add
        try:
            item: Any
            async for item in subscriber.stream(user_id, categories, since_ms=since_ms):
                add(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("dashboard stream for %s stopped", user_id)
            self.failure = f"The live stream stopped: {exc}. Pick the user again to retry."
