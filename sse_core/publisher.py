"""Publishing: retain and deliver each event in one atomic round trip.

With retention on, a Lua script appends the event to the target's stream, trims the stream by
size (``MAXLEN ~``) and by age (``MINID ~`` from the TTL), refreshes the idle expiry and publishes
to the channel, all at once: a subscriber can never see a live event that replay cannot find, nor
the reverse. Stream ids are derived from the event's UUIDv7 time (``<ms>-*``), which is what lets
replay seek straight to an id instead of scanning.

Every call goes through the client's :class:`~sse_core.batcher.RedisBatcher`: concurrent
publishes (from any publisher on the same client) leave together as pipelined script calls on a
few connections, a lone publish still costs one round trip, and each call keeps its own outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from redis.asyncio import Redis

from sse_core.batcher import Call, LuaScript, RedisBatcher
from sse_core.codec import STREAM_FIELDS, encode_field_values, encode_payload
from sse_core.events import SSEEvent
from sse_core.keys import SSEChannelKeys
from sse_core.settings import SSESettings

# KEYS[1] stream; ARGV: channel, payload, event ms, max len, min id ms, ttl ms, then the
# stream field values in STREAM_FIELDS order (their names are written into the script: five
# fewer arguments to pack on every publish).
# If another publisher's clock ran ahead, "<ms>-*" is below the stream's top id and XADD
# refuses it; the entry then takes the top id's millisecond, so stream ids never fall below the
# event's own time (the invariant replay's seek relies on).
_FIELDS_LUA = ", ".join(f"'{name}', ARGV[{7 + i}]" for i, name in enumerate(STREAM_FIELDS))
PUBLISH_SCRIPT = f"""
local key = KEYS[1]
local id = redis.pcall('XADD', key, 'MAXLEN', '~', ARGV[4], ARGV[3] .. '-*', {_FIELDS_LUA})
if type(id) == 'table' and id.err then
  local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  local next_id = '*'  -- emptied stream (XTRIM/XDEL): '*' is never below its last id
  if top[1] then next_id = string.match(top[1][1], '^(%d+)-') .. '-*' end
  id = redis.call('XADD', key, 'MAXLEN', '~', ARGV[4], next_id, {_FIELDS_LUA})
end
redis.call('XTRIM', key, 'MINID', '~', ARGV[5])
redis.call('PEXPIRE', key, ARGV[6])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""
_SCRIPT = LuaScript(PUBLISH_SCRIPT)


class SSEPublishError(RuntimeError):
    """Raised instead of returning ``False`` when the publisher was built with ``raise_errors``."""


@dataclass
class PublisherStats:
    published: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class _Delivery:
    channel: str
    stream: str
    event: SSEEvent


class RedisSSEPublisher:
    """Implements :class:`~sse_core.protocol.SSEPublisherProtocol` over Redis.

    SSE is best-effort for most applications, so by default a Redis failure is logged (with the
    traceback), counted in :attr:`stats` and reported as ``False``; pass ``raise_errors=True`` to
    get :class:`SSEPublishError` instead.
    """

    def __init__(
        self,
        redis_client: Redis,
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
        self.keys = keys or SSEChannelKeys()
        self.raise_errors = raise_errors
        self.stats = PublisherStats()

    @classmethod
    def from_settings(
        cls, redis_client: Redis, settings: SSESettings, logger: logging.Logger | None = None
    ) -> RedisSSEPublisher:
        """A publisher configured from ``SSE_*`` settings (retention bounds, key prefix)."""
        return cls(
            redis_client,
            enable_retention=settings.enable_retention,
            retention_max_len=settings.retention_max_len,
            retention_ttl_seconds=settings.retention_ttl_seconds,
            logger=logger,
            keys=SSEChannelKeys(settings.key_prefix),
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
        return _Delivery(self.keys.broadcast_channel(), self.keys.broadcast_stream(), event)

    def _call(self, d: _Delivery) -> Call:
        """The one Redis call that retains (if on) and publishes ``d``."""
        payload = encode_payload(d.event)
        if not self.enable_retention:
            return Call(None, (d.channel,), ("PUBLISH", d.channel, payload))
        ms = d.event.time_ms
        args = (
            d.channel,
            payload,
            ms,
            self.retention_max_len,
            max(ms - self.retention_ttl_ms, 0),
            self.retention_ttl_ms,
            *encode_field_values(d.event),
        )
        return Call(_SCRIPT, (d.stream,), args)

    async def _deliver(self, deliveries: Sequence[_Delivery]) -> bool:
        """Publish through the client's batcher: concurrent calls share pipelined round trips.

        Each event has its own outcome; the result is ``True`` only if every one succeeded.
        """
        if not deliveries:
            return True
        batcher = RedisBatcher.for_client(self._redis)
        results = await batcher.run([self._call(d) for d in deliveries])
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
