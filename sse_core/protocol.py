"""The seams: what a subscriber and a publisher must offer, structurally typed.

Adapters satisfy these without inheriting from them (``isinstance`` works: runtime-checkable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol, runtime_checkable
from uuid import UUID

from sse_core.categories import SSEEventCategory
from sse_core.events import SSEEvent


@runtime_checkable
class SSESubscriberProtocol(Protocol):
    """Consume one user's events: live, filtered by category, with ``Last-Event-ID`` replay."""

    def subscribe(
        self, user_id: UUID, categories: list[str] | None = None
    ) -> AsyncIterator[SSEEvent]:
        """Yield the user's and broadcast events as they arrive, until cancelled."""
        ...

    async def get_missed_events(
        self,
        user_id: UUID,
        last_event_id: UUID,
        categories: list[str] | None = None,
    ) -> list[SSEEvent]:
        """Retained events published after ``last_event_id``, in order; ``[]`` without retention."""
        ...

    def filter_by_categories(self, event: SSEEvent, categories: list[str] | None) -> bool:
        """Whether ``event`` passes the filter; ``None`` passes everything."""
        ...

    @staticmethod
    def validate_categories(categories: list[str] | None) -> list[SSEEventCategory]:
        """Category names to enum values; ``ValueError`` naming the invalid ones."""
        ...


@runtime_checkable
class SSEPublisherProtocol(Protocol):
    """Feed events to subscribers."""

    async def publish(self, event: SSEEvent) -> bool:
        """Deliver to ``event.user_id``."""
        ...

    async def publish_to_user(self, user_id: UUID, event: SSEEvent) -> bool:
        """Deliver to ``user_id``."""
        ...

    async def broadcast(self, event: SSEEvent) -> bool:
        """Deliver to every user."""
        ...

    async def publish_many(self, events: Iterable[SSEEvent], *, broadcast: bool = False) -> bool:
        """Deliver many (each to its own user, or all to everyone) in order, in as few round
        trips as the transport allows: a producer with a backlog should not pay one each."""
        ...
