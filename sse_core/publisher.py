"""Publishing: retain and deliver each event in one atomic round trip.

With retention on, a Lua script appends the event to the target's stream, trims the stream by
size (``MAXLEN ~``) and by age (``MINID ~`` from the TTL), refreshes the idle expiry and publishes
to the channel, all at once: a subscriber can never see a live event that replay cannot find, nor
the reverse. Stream ids are derived from the event's UUIDv7 time (``<ms>-*``), which is what lets
replay seek straight to an id instead of scanning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

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
        self._script = redis_client.register_script(PUBLISH_SCRIPT)

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
        """The same event to several users, in one round trip."""
        return await self._deliver([self._to_user(u, event) for u in user_ids])

    async def broadcast(self, event: SSEEvent) -> bool:
        return await self._deliver([self._to_all(event)])

    async def publish_many(self, events: Iterable[SSEEvent], *, broadcast: bool = False) -> bool:
        """Many events (each to its own user, or all broadcast) in one round trip, in order."""
        route = self._to_all if broadcast else (lambda e: self._to_user(e.user_id, e))
        return await self._deliver([route(e) for e in events])

    def _to_user(self, user_id: UUID, event: SSEEvent) -> _Delivery:
        return _Delivery(self.keys.user_channel(user_id), self.keys.user_stream(user_id), event)

    def _to_all(self, event: SSEEvent) -> _Delivery:
        return _Delivery(self.keys.broadcast_channel(), self.keys.broadcast_stream(), event)

    def _script_args(self, d: _Delivery) -> list[Any]:
        ms = d.event.time_ms
        return [
            d.channel,
            encode_payload(d.event),
            ms,
            self.retention_max_len,
            max(ms - self.retention_ttl_ms, 0),
            self.retention_ttl_ms,
            *encode_field_values(d.event),
        ]

    async def _deliver(self, deliveries: Sequence[_Delivery]) -> bool:
        if not deliveries:
            return True
        try:
            if self.enable_retention:
                await self._run_script(deliveries)
            elif len(deliveries) == 1:
                d = deliveries[0]
                await self._redis.publish(d.channel, encode_payload(d.event))
            else:
                pipe = self._redis.pipeline(transaction=False)
                for d in deliveries:
                    pipe.publish(d.channel, encode_payload(d.event))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self.stats.failed += len(deliveries)
            self._log.warning(
                "SSE publish of %d event(s) failed (first: %s %s)",
                len(deliveries),
                deliveries[0].event.event_type.value,
                deliveries[0].event.event_id,
                exc_info=True,
            )
            if self.raise_errors:
                message = f"publishing {len(deliveries)} event(s) failed: {exc}"
                raise SSEPublishError(message) from exc
            return False
        self.stats.published += len(deliveries)
        return True

    async def _run_script(self, deliveries: Sequence[_Delivery]) -> None:
        if len(deliveries) == 1:
            d = deliveries[0]
            await self._script(keys=[d.stream], args=self._script_args(d))
            return
        todo = list(deliveries)
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            for d in todo:
                pipe.evalsha(self._script.sha, 1, d.stream, *self._script_args(d))
            results = await pipe.execute(raise_on_error=False)
            # Calls that ran must not run again (that would append and publish them twice).
            missing = [
                d for d, r in zip(todo, results, strict=True) if isinstance(r, NoScriptError)
            ]
            failed = [
                r for r in results if isinstance(r, Exception) and not isinstance(r, NoScriptError)
            ]
            if failed:
                raise failed[0]
            if not missing:
                return
            if attempt == 2:
                raise NoScriptError("publish script missing after SCRIPT LOAD")
            await self._redis.script_load(PUBLISH_SCRIPT)
            todo = missing
