"""Helpers for tests that consume subscriptions: collect with a deadline, never sleep blindly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from sse_core import RedisSSEPublisher, RedisSSESubscriber, SSEChannelKeys, SSEEvent
from tests.support.polling import eventually

__all__ = [
    "Collector",
    "eventually",
    "live_collector",
    "new_event",
    "retaining_pair",
    "wait_subscribed",
]


class Collector:
    """Consumes an async iterator in a task; tests wait for a count with a deadline."""

    def __init__(self, source: AsyncIterator[Any]) -> None:
        self.items: list[Any] = []
        self.error: BaseException | None = None
        self._source = source
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for item in self._source:
                self.items.append(item)
                self._changed.set()
        except Exception as exc:
            self.error = exc
            self._changed.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:  # noqa: ASYNC109
        async def reach() -> None:
            while len(self.items) < count and self.error is None:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reach(), timeout)
        if self.error is not None:
            raise self.error
        return self.items[:count]

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()


async def wait_subscribed(client: Redis, channel: str, count: int = 1) -> None:
    """Until the server reports ``count`` subscribers on ``channel`` (``PUBSUB NUMSUB``)."""

    async def check() -> bool:
        [(_, subscribers)] = await client.pubsub_numsub(channel)
        return int(subscribers) >= count

    await eventually(check)


def new_event(
    user: UUID, event_type: str = "ai.response.chunk", *, event_id: UUID | None = None, **data: Any
) -> SSEEvent:
    """An event for ``user`` (a fresh UUIDv7 id unless one is given)."""
    if event_id is None:
        return SSEEvent(event_type=event_type, user_id=user, data=data)
    return SSEEvent(event_id=event_id, event_type=event_type, user_id=user, data=data)


def retaining_pair(client: Redis, **kw: Any) -> tuple[RedisSSEPublisher, RedisSSESubscriber]:
    """A publisher and a subscriber on ``client``, retention on unless ``enable_retention``."""
    retention = kw.pop("enable_retention", True)
    publisher = RedisSSEPublisher(client, enable_retention=retention, **kw)
    return publisher, RedisSSESubscriber(client, enable_retention=retention)


async def live_collector(
    client: Redis, subscriber: RedisSSESubscriber, user: UUID, **kw: Any
) -> Collector:
    """``subscriber.subscribe(user)`` collected, once the server confirms the subscription."""
    collector = Collector(subscriber.subscribe(user, **kw))
    await wait_subscribed(client, _KEYS.user_channel(user))
    return collector


_KEYS = SSEChannelKeys()
