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

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

from redis.asyncio.cluster import RedisCluster

from sse_core.batcher import Call, RedisBatcher
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


class _Delivery(NamedTuple):  # a tuple: built once per published event, on the hot path
    channel: str
    stream: str | None  # None: live only (a layout that does not retain broadcasts)
    event: SSEEvent


_NAMES_CACHED = 4096  # users whose channel and stream names a publisher keeps at hand


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
        # Formatting a UUID into two key names costs more than the rest of routing an event.
        self._user_names: dict[UUID, tuple[str, str | None]] = {}
        self._batcher: tuple[asyncio.AbstractEventLoop, RedisBatcher] | None = None

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
        return await self._deliver_one(self._to_user(event.user_id, event))

    async def publish_to_user(self, user_id: UUID, event: SSEEvent) -> bool:
        return await self._deliver_one(self._to_user(user_id, event))

    async def publish_to_users(self, user_ids: Iterable[UUID], event: SSEEvent) -> bool:
        """The same event to several users, pipelined together."""
        return await self._deliver([self._to_user(u, event) for u in user_ids])

    async def broadcast(self, event: SSEEvent) -> bool:
        return await self._deliver_one(self._to_all(event))

    async def publish_many(self, events: Iterable[SSEEvent], *, broadcast: bool = False) -> bool:
        """Many events (each to its own user, or all broadcast), pipelined together, in order."""
        route = self._to_all if broadcast else (lambda e: self._to_user(e.user_id, e))
        return await self._deliver([route(e) for e in events])

    def _to_user(self, user_id: UUID, event: SSEEvent) -> _Delivery:
        names = self._user_names.get(user_id)
        if names is None:
            if len(self._user_names) >= _NAMES_CACHED:
                self._user_names.clear()
            names = (self.keys.user_channel(user_id), self.keys.user_stream(user_id))
            self._user_names[user_id] = names
        return _Delivery(names[0], names[1], event)

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

    def _batcher_here(self) -> RedisBatcher:
        """The client's batcher for the running loop (looked up once per loop, not per call)."""
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._batcher[0] is not loop:
            self._batcher = (loop, batcher_for(self._redis))  # on a cluster: batches per node
        return self._batcher[1]

    async def _deliver_one(self, delivery: _Delivery) -> bool:
        """One event: :meth:`_deliver` without the lists, for the most common call."""
        try:
            encoded = encode_event(delivery.event)
        except MalformedEvent as exc:
            return self._outcome([(delivery, exc)], 1)
        outcome = await self._batcher_here().run_one(self._call(delivery, encoded))
        return self._outcome([(delivery, outcome)] if isinstance(outcome, Exception) else [], 1)

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
            sent = await self._batcher_here().run([self._call(deliveries[i], e) for i, e in ready])
            for (i, _), outcome in zip(ready, sent, strict=True):
                results[i] = outcome
        failures = [
            (d, r) for d, r in zip(deliveries, results, strict=True) if isinstance(r, Exception)
        ]
        return self._outcome(failures, len(deliveries))

    def _outcome(self, failures: list[tuple[_Delivery, Exception]], attempted: int) -> bool:
        """Count, log and report (or raise, with ``raise_errors``) what ``attempted`` came to."""
        self.stats.published += attempted - len(failures)
        if not failures:
            return True
        self.stats.failed += len(failures)
        first, exc = failures[0]
        self._log.warning(
            "SSE publish of %d of %d event(s) failed (first: %s %s)",
            len(failures),
            attempted,
            first.event.event_type.value,
            first.event.event_id,
            exc_info=exc,
        )
        if self.raise_errors:
            message = f"publishing {len(failures)} event(s) failed: {exc}"
            raise SSEPublishError(message) from exc
        return False
