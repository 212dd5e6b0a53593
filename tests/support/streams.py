"""Helpers for tests that consume subscriptions: collect with a deadline, never sleep blindly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from tests.support.polling import eventually

__all__ = ["Collector", "eventually", "wait_subscribed"]


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
