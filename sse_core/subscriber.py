"""The Redis subscriber: live delivery, replay, and the gapless hand-over between them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from redis.asyncio.cluster import RedisCluster

from sse_core.cancellation import checked
from sse_core.categories import SSEEventCategory, validate_categories
from sse_core.cluster import require_cluster_layout
from sse_core.cluster_hub import Hub, hub_for
from sse_core.connection import RedisClient
from sse_core.events import SSEEvent
from sse_core.handover import HandOver
from sse_core.hub import (
    CONNECTION_ERRORS,
    ConnectionStatus,
    Subscription,
    reconnect_backoff,
)
from sse_core.ids import epoch_ms, parse_event_id, parse_user_id, uuid7_time_ms
from sse_core.keys import SSEChannelKeys
from sse_core.mailbox import OVERFLOW, RESUME, RESYNC, Signal
from sse_core.replay import Position, Replay
from sse_core.retention import RetentionReader
from sse_core.settings import SSESettings

GapReason = Literal["resume", "lagged", "reconnected"]
_GAP_REASONS: dict[Signal, GapReason] = {
    RESUME: "resume",
    OVERFLOW: "lagged",
    RESYNC: "reconnected",
}


@dataclass(frozen=True, slots=True)
class StreamGap:
    """Events may be missing before the next item; the consumer should reload its state.

    ``after_event_id`` is the last event the consumer got (``None`` if none yet).
    """

    reason: GapReason
    after_event_id: UUID | None


class SubscriberLagged(RuntimeError):
    """The consumer fell behind its bounded queue and the dropped span could not be replayed."""

    def __init__(self, after_event_id: UUID | None) -> None:
        super().__init__(
            "subscriber fell behind and events were dropped"
            + (f" after {after_event_id}" if after_event_id else "")
            + "; resubscribe with last_event_id to recover from retention"
        )
        self.after_event_id = after_event_id


@dataclass
class SubscriberStats:
    delivered: int = 0
    replayed: int = 0
    duplicates: int = 0
    malformed: int = 0
    dropped: int = 0
    gaps: int = 0
    recoveries: int = 0
    lagged: int = 0  # times the consumer fell behind its queue (then recovered, or a gap)


class RedisSSESubscriber:
    """Implements :class:`~sse_core.protocol.SSESubscriberProtocol` over Redis.

    Cheap to construct (one per request is fine): the pub/sub connection is shared per client.
    """

    def __init__(
        self,
        redis_client: RedisClient,
        enable_retention: bool = False,
        logger: logging.Logger | None = None,
        *,
        keys: SSEChannelKeys | None = None,
        queue_size: int = 1000,
        retention_ttl_seconds: int = 3600,
        queue_bytes: int | None = None,
    ) -> None:
        self._redis = redis_client
        self.enable_retention = enable_retention
        self._log = logger or logging.getLogger(__name__)
        self.keys = keys or SSEChannelKeys()
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes  # per consumer, besides queue_size events (None: no bound)
        self.stats = SubscriberStats()
        self.retention = RetentionReader(
            redis_client,
            self.keys,
            self._log,
            self._count_malformed,
            ttl_ms=retention_ttl_seconds * 1000,
        )
        self._backoff = reconnect_backoff()
        if isinstance(redis_client, RedisCluster):
            require_cluster_layout(self.retention.layout)

    @classmethod
    def from_settings(
        cls, redis_client: RedisClient, settings: SSESettings, logger: logging.Logger | None = None
    ) -> RedisSSESubscriber:
        """A subscriber configured from ``SSE_*`` settings (retention, TTL, layout, queue)."""
        return cls(
            redis_client,
            enable_retention=settings.enable_retention,
            logger=logger,
            keys=settings.channel_keys(),
            queue_size=settings.subscriber_queue_size,
            queue_bytes=settings.subscriber_queue_bytes,
            retention_ttl_seconds=settings.retention_ttl_seconds,
        )

    # -- the protocol -------------------------------------------------------------------------

    async def subscribe(
        self,
        user_id: UUID,
        categories: list[str] | None = None,
        last_event_id: UUID | None = None,
    ) -> AsyncIterator[SSEEvent]:
        """Live events for ``user_id`` (and broadcasts), resuming after ``last_event_id`` if given.

        Gaps that retention cannot fill are logged and counted; a consumer that falls behind and
        cannot be caught up raises :class:`SubscriberLagged`. Use :meth:`stream` to receive gaps
        as values instead.
        """
        async for item in self.stream(user_id, categories, last_event_id):
            if isinstance(item, StreamGap):
                if item.reason == "lagged":
                    raise SubscriberLagged(item.after_event_id)
                self._log.warning("SSE stream gap (%s) after %s", item.reason, item.after_event_id)
                continue
            yield item

    async def get_missed_events(
        self,
        user_id: UUID,
        last_event_id: UUID,
        categories: list[str] | None = None,
    ) -> list[SSEEvent]:
        return (await self.replay(user_id, last_event_id, categories)).events

    def filter_by_categories(self, event: SSEEvent, categories: list[str] | None) -> bool:
        if categories is None:
            return True
        return event.category in validate_categories(categories)

    @staticmethod
    def validate_categories(categories: list[str] | None) -> list[SSEEventCategory]:
        return validate_categories(categories)

    # -- beyond the protocol ------------------------------------------------------------------

    async def replay(
        self,
        user_id: UUID | str,
        last_event_id: UUID | str,
        categories: list[str] | None = None,
    ) -> Replay:
        """Missed events and whether they cover the whole gap (``complete``)."""
        uid, last = parse_user_id(user_id), parse_event_id(last_event_id)
        allowed = frozenset(validate_categories(categories))
        if not self.enable_retention:
            return Replay([], complete=False, includes_broadcasts=False)
        return await self.retention.replay(uid, last, allowed)

    def _count_malformed(self) -> None:
        self.stats.malformed += 1

    async def retained_users(self) -> list[UUID]:
        """Users that have retained events (``SCAN``, never ``KEYS``): who there is to watch."""
        return await self.retention.users()

    def connection_status(self) -> ConnectionStatus:
        """State of the shared pub/sub connection (for status displays)."""
        return hub_for(self._redis, self._log).status()

    async def stream(
        self,
        user_id: UUID | str,
        categories: list[str] | None = None,
        last_event_id: UUID | str | None = None,
        *,
        since_ms: int | None = None,
        sink: Callable[[SSEEvent], bool] | None = None,
    ) -> AsyncIterator[SSEEvent | StreamGap]:
        """Like :meth:`subscribe`, but yields a :class:`StreamGap` wherever events may be missing.

        Order of work for a resume: subscribe (and wait until the server confirms it), replay
        from retention, then drain live events, dropping those the replay already delivered.
        After an overflow or a reconnect the same catch-up runs from the last delivered event.
        ``since_ms`` (epoch milliseconds, instead of ``last_event_id``) resumes from a time:
        history from then on, then live, with the same hand-over (a dashboard's back-fill); if
        retention no longer reaches back that far, a ``StreamGap("resume", None)`` comes first.

        ``sink`` is the consumer's fast path for live events: while the iteration waits for the
        next item, each live event is offered to it where the shared reader hands it over, and
        one it takes (returns ``True`` for: it delivered the event itself, e.g. wrote it to an
        idle socket) is not yielded. It must not block; if it raises, the error is logged and
        the stream goes on without it. Replayed events, gaps and the hand-over's possible
        duplicates always come through the iteration.
        """
        uid = parse_user_id(user_id)
        allowed = frozenset(validate_categories(categories))
        last = parse_event_id(last_event_id) if last_event_id is not None else None
        if last is not None and since_ms is not None:
            raise ValueError("give last_event_id or since_ms, not both")
        channels = (self.keys.user_channel(uid), self.keys.broadcast_channel())
        sub = Subscription(channels, allowed, self.queue_size, self.stats, self.queue_bytes)
        hub = await self._attach(sub)
        # Where this consumer stands: where it started, and per stream the last event it got
        # (kept as events; their cursors are only built when a catch-up needs them).
        anchor_id = last
        if last is not None:
            anchor_ms = uuid7_time_ms(last)
        else:
            anchor_ms = since_ms if since_ms is not None else epoch_ms()
        lasts: list[SSEEvent | None] = [None] * len(channels)
        latest: SSEEvent | None = None
        handover = HandOver()
        resuming = last is not None or since_ms is not None
        pending: Signal | None = RESUME if resuming else None

        def delivered(source: int, event: SSEEvent) -> None:
            nonlocal latest
            self.stats.delivered += 1
            lasts[source] = latest = event

        def take(item: tuple[int, SSEEvent]) -> bool:
            nonlocal sink
            if sink is None or handover.pending:
                return False
            source, event = item
            try:
                if not sink(event):
                    return False
            except Exception:
                # It runs inside the shared reader, which must not fail for one consumer: this
                # stream goes on without its fast path, the event through the iteration.
                self._log.exception("an SSE stream's sink failed; it is no longer offered events")
                sink = None
                return False
            delivered(source, event)
            return True

        try:
            while True:
                if pending is not None:
                    if pending is RESYNC:
                        await hub.resynced()
                    cursors = tuple((e.time_ms, e.event_id) if e else None for e in lasts)
                    position = Position(anchor_ms, anchor_id, cursors)
                    after = latest.event_id if latest is not None else anchor_id
                    catching_up = self._catch_up(uid, allowed, position, after, pending)
                    replayed: list[UUID] = []
                    async for source, caught in catching_up:
                        if isinstance(caught, SSEEvent):
                            replayed.append(caught.event_id)
                            lasts[source] = latest = caught
                        yield caught
                    handover.begin(replayed)
                    pending = None
                item = await sub.mailbox.get(take if sink is not None else None)
                if isinstance(item, Signal):
                    if item is OVERFLOW:
                        self.stats.lagged += 1
                    pending = item
                    continue
                source, event = item
                if handover.admit(event):
                    delivered(source, event)
                    yield event
                else:
                    self.stats.duplicates += 1
        finally:
            await hub.detach(sub)  # forgets at once; the unsubscribe cannot be cancelled

    async def _attach(self, sub: Subscription) -> Hub:
        failures = 0
        while True:
            hub = hub_for(self._redis, self._log)
            try:
                await hub.attach(sub)
                return hub
            except CONNECTION_ERRORS:
                failures += 1
                delay = self._backoff.compute(failures)
                self._log.warning("Redis unreachable; subscribing again in %.2fs", delay)
                await asyncio.sleep(delay)

    async def _catch_up(
        self,
        user_id: UUID,
        allowed: frozenset[SSEEventCategory],
        position: Position,
        last: UUID | None,
        signal: Signal,
    ) -> AsyncIterator[tuple[int, SSEEvent | StreamGap]]:
        """Replay what the consumer at ``position`` has not got, each event with its stream."""
        reason = _GAP_REASONS[signal]
        if not self.enable_retention:
            self.stats.gaps += 1
            yield -1, StreamGap(reason, last)
            return
        failures = 0
        while True:
            try:
                # checked: a cancellation redis-py swallowed must not send the stream on
                # to wait for live events that nobody will read.
                replay = await checked(self.retention.resume(user_id, position, allowed))
                break
            except CONNECTION_ERRORS:
                failures += 1
                await asyncio.sleep(self._backoff.compute(failures))
        if not replay.complete:
            self.stats.gaps += 1
            yield -1, StreamGap(reason, last)
        elif signal is not RESUME:
            self.stats.recoveries += 1
        for source, event in replay.events:
            self.stats.replayed += 1
            yield source, event
