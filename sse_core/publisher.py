"""Publishing: retain and deliver each event in one atomic round trip.

With retention on, a Lua script appends the event to the target's stream, trims the stream by
size (``MAXLEN ~``) and by age (``MINID ~`` from the TTL), refreshes the idle expiry and publishes
to the channel, all at once: a subscriber can never see a live event that replay cannot find, nor
the reverse. Stream ids are derived from the event's UUIDv7 time (``<ms>-*``), which is what lets
replay seek straight to an id instead of scanning.

Every call goes through the client's :class:`~sse_core.batcher.RedisBatcher`: concurrent
publishes (from any publisher on the same client) leave together as pipelined script calls on a
few connections, a lone publish still costs one round trip, and each call keeps its own outcome.

The key layout (:mod:`sse_core.layouts`; ``keys`` picks it) supplies that call per event: the
script above for ssewatch's own layout, the seed application's exact commands for ``dashtam``.

Every event is encoded, and checked against the codec's rule, before anything is sent: one
event that cannot be stored fails alone and is counted, the rest of its batch goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from redis.asyncio.cluster import RedisCluster

from sse_core.batcher import Call
from sse_core.cluster import batcher_for, require_cluster_layout, sharded
from sse_core.codec import EncodedEvent, MalformedEvent, encode_event
from sse_core.connection import RedisClient
from sse_core.events import SSEEvent
from sse_core.keys import SSEChannelKeys
from sse_core.layouts import PUBLISH_SCRIPT, Retention, layout_for
from sse_core.settings import SSESettings

__all__ = ["PUBLISH_SCRIPT", "PublisherStats", "RedisSSEPublisher", "SSEPublishError"]


class SSEPublishError(RuntimeError):
    """Raised instead of returning ``False`` when the publisher was built with ``raise_errors``."""


@dataclass
class PublisherStats:
    published: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class _Delivery:
    channel: str
    stream: str | None  # None: live only (a layout that does not retain broadcasts)
    event: SSEEvent


class RedisSSEPublisher:
    """Implements :class:`~sse_core.protocol.SSEPublisherProtocol` over Redis.

    SSE is best-effort for most applications, so by default a Redis failure is logged (with the
    traceback), counted in :attr:`stats` and reported as ``False``; pass ``raise_errors=True`` to
    get :class:`SSEPublishError` instead.
    """

    def __init__(
        self,
        redis_client: RedisClient,
        enable_retention: bool = False,
        retention_max_len: int = 1000,
        retention_ttl_seconds: int = 3600,
        logger: logging.Logger | None = None,
        *,
        keys: SSEChannelKeys | None = None,
        raise_errors: bool = False,
    ) -> None:
        if retention_max_len < 1 or retention_ttl_seconds < 1:
            raise ValueError("retention_max_len and retention_ttl_seconds must be at least 1")
        self._redis = redis_client
        self.enable_retention = enable_retention
        self.retention_max_len = retention_max_len
        self.retention_ttl_ms = retention_ttl_seconds * 1000
        self._log = logger or logging.getLogger(__name__)
        self.layout = layout_for(keys)
        self.keys = self.layout.keys
        self.raise_errors = raise_errors
        self.stats = PublisherStats()
        self._retention = Retention(retention_max_len, self.retention_ttl_ms)
        self._cluster = isinstance(redis_client, RedisCluster)
        if self._cluster:
            require_cluster_layout(self.layout)

    @classmethod
    def from_settings(
        cls, redis_client: RedisClient, settings: SSESettings, logger: logging.Logger | None = None
    ) -> RedisSSEPublisher:
        """A publisher configured from ``SSE_*`` settings (retention bounds, key layout/prefix)."""
        return cls(
            redis_client,
            enable_retention=settings.enable_retention,
            retention_max_len=settings.retention_max_len,
            retention_ttl_seconds=settings.retention_ttl_seconds,
            logger=logger,
            keys=settings.channel_keys(),
        )

    async def publish(self, event: SSEEvent) -> bool:
        return await self._deliver([self._to_user(event.user_id, event)])

    async def publish_to_user(self, user_id: UUID, event: SSEEvent) -> bool:
        return await self._deliver([self._to_user(user_id, event)])

    async def publish_to_users(self, user_ids: Iterable[UUID], event: SSEEvent) -> bool:
        """The same event to several users, pipelined together."""
        return await self._deliver([self._to_user(u, event) for u in user_ids])

    async def broadcast(self, event: SSEEvent) -> bool:
        return await self._deliver([self._to_all(event)])

    async def publish_many(self, events: Iterable[SSEEvent], *, broadcast: bool = False) -> bool:
        """Many events (each to its own user, or all broadcast), pipelined together, in order."""
        route = self._to_all if broadcast else (lambda e: self._to_user(e.user_id, e))
        return await self._deliver([route(e) for e in events])

    def _to_user(self, user_id: UUID, event: SSEEvent) -> _Delivery:
        return _Delivery(self.keys.user_channel(user_id), self.keys.user_stream(user_id), event)

    def _to_all(self, event: SSEEvent) -> _Delivery:
        return _Delivery(self.keys.broadcast_channel(), self.layout.broadcast_stream(), event)

    def _call(self, d: _Delivery, encoded: EncodedEvent) -> Call:
        """The one Redis call that retains (if on) and publishes ``d``: the layout's."""
        retention = self._retention if self.enable_retention else None
        call = self.layout.publish_call(d.channel, d.stream, encoded, retention)
        return sharded(call) if self._cluster else call

    @staticmethod
    def _encode(deliveries: Sequence[_Delivery]) -> list[EncodedEvent | MalformedEvent]:
        """Each delivery's stored forms, or why its event cannot be stored (once per event)."""
        by_event: dict[int, EncodedEvent | MalformedEvent] = {}
        for d in deliveries:
            if id(d.event) not in by_event:
                try:
                    by_event[id(d.event)] = encode_event(d.event)
                except MalformedEvent as exc:
                    by_event[id(d.event)] = exc
        return [by_event[id(d.event)] for d in deliveries]

    async def _deliver(self, deliveries: Sequence[_Delivery]) -> bool:
        """Publish through the client's batcher: concurrent calls share pipelined round trips.

        Each event has its own outcome; the result is ``True`` only if every one succeeded.
        """
        if not deliveries:
            return True
        # An event that cannot be stored fails alone, before anything is sent.
        encoded = self._encode(deliveries)
        results: list[object] = list(encoded)
        ready = [(i, e) for i, e in enumerate(encoded) if isinstance(e, EncodedEvent)]
        if ready:
            batcher = batcher_for(self._redis)  # on a cluster: batches per node
            sent = await batcher.run([self._call(deliveries[i], e) for i, e in ready])
            for (i, _), outcome in zip(ready, sent, strict=True):
                results[i] = outcome
        failures = [
            (d, r) for d, r in zip(deliveries, results, strict=True) if isinstance(r, Exception)
        ]
        self.stats.published += len(deliveries) - len(failures)
        if not failures:
            return True
        self.stats.failed += len(failures)
        first, exc = failures[0]
        self._log.warning(
            "SSE publish of %d of %d event(s) failed (first: %s %s)",
            len(failures),
            len(deliveries),
            first.event.event_type.value,
            first.event.event_id,
            exc_info=exc,
        )
        if self.raise_errors:
            message = f"publishing {len(failures)} event(s) failed: {exc}"
            raise SSEPublishError(message) from exc
        return False
