"""A bounded per-subscriber queue that never blocks the producer and never loses silently.

The shared pub/sub reader must not wait for any one slow consumer, so ``put`` never blocks.
When the queue is full the mailbox flips to *overflowed*: further items are dropped and counted
until the consumer has drained what was queued, then :data:`OVERFLOW` is handed to it once so it
can recover the dropped span from retention.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Signal(Enum):
    """Control items that travel through a mailbox in order with the events."""

    OVERFLOW = "overflow"  # the consumer fell behind; items after the last one it got were dropped
    RESYNC = "resync"  # the shared connection came back; items may have been missed meanwhile
    RESUME = "resume"  # the consumer asked to start after a given event (never queued by the hub)


OVERFLOW = Signal.OVERFLOW
RESYNC = Signal.RESYNC
RESUME = Signal.RESUME


class Mailbox(Generic[T]):
    """Single-consumer, multi-producer, bounded; producers run on the consumer's event loop.

    Bounded by ``capacity`` items and, if ``max_bytes`` is given, by the sizes producers
    declare (a client's events can be 100 KB each: a count alone bounds nothing). One item
    larger than ``max_bytes`` is still accepted into an empty mailbox, so it can be delivered.
    """

    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1, got {capacity}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"mailbox max_bytes must be at least 1, got {max_bytes}")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.dropped = 0
        self._items: deque[T | Signal] = deque()
        self._sizes: deque[int] = deque()  # one per item, signals 0
        self._overflowed = False
        self._waiter: asyncio.Future[None] | None = None
        self._take: Callable[[T], bool] | None = None  # the waiting consumer's, see get()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T, size: int = 0) -> bool:
        """Hand ``item`` (``size`` bytes) to the consumer: taken at once if it waits with a
        ``take`` that accepts it (see :meth:`get`), else queued; ``False`` (and counted in
        :attr:`dropped`) if the consumer is behind."""
        if (
            self._overflowed
            or len(self._items) >= self.capacity
            or (
                self.max_bytes is not None
                and self.queued_bytes + size > self.max_bytes
                and self._items
            )
        ):
            self._overflowed = True
            self.dropped += 1
            self._wake()
            return False
        if self._take is not None and not self._items and self._take(item):
            return True
        self._items.append(item)
        self._sizes.append(size)
        self.queued_bytes += size
        self._wake()
        return True

    def signal(self, signal: Signal) -> None:
        """Queue a control signal; signals are never dropped and do not count toward capacity."""
        self._items.append(signal)
        self._sizes.append(0)
        self._wake()

    async def get(self, take: Callable[[T], bool] | None = None) -> T | Signal:
        """The next item or signal, waiting for one.

        While it waits, ``take`` (if given) is offered each item first, from the producer's
        call: a consumer that can finish an item at once (an idle socket) takes it there, and
        no task wakes for it. An item it refuses (it returns ``False``) is queued as usual, and
        nothing is offered to it while anything is queued, so the consumer's order holds.
        ``take`` must neither block nor raise: it runs inside the producer.
        """
        while True:
            if self._items:
                self.queued_bytes -= self._sizes.popleft()
                return self._items.popleft()
            if self._overflowed:
                self._overflowed = False
                return OVERFLOW
            self._waiter = asyncio.get_running_loop().create_future()
            self._take = take
            try:
                await self._waiter
            finally:
                self._waiter = None
                self._take = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
