"""Reading the retention streams: the seek-then-read-forward side of replay and history."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from sse_core.batcher import pack_commands
from sse_core.categories import SSEEventCategory
from sse_core.codec import MalformedEvent, as_text, decode_fields
from sse_core.connection import RedisClient, undecoded_sibling
from sse_core.ids import epoch_ms, uuid7_time_ms
from sse_core.keys import SSEChannelKeys
from sse_core.layouts import layout_for
from sse_core.replay import (
    Position,
    Replay,
    RetainedEvent,
    SourcedReplay,
    StreamId,
    StreamSlice,
    format_stream_id,
    parse_stream_id,
    select_resume,
    select_since,
)


def _info_value(info: Mapping[Any, Any] | list[Any], name: str) -> Any:
    if isinstance(info, list):  # a raw RESP2 reply: flat name/value pairs
        info = dict(zip(info[0::2], info[1::2], strict=False))
    return info.get(name, info.get(name.encode()))


async def _raw_transaction(client: Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``commands`` in one ``MULTI``/``EXEC`` on a pooled connection: ``EXEC``'s reply, as bytes.

    The reply is read as the server sent it (hiredis or redis-py's parser, no response
    callbacks): redis-py's pipeline would turn every ``XRANGE`` entry into a dict in Python
    (~4 us each under cProfile, a tenth of a replay) and, on a ``decode_responses=True``
    client, decode every value, raising on one that is not UTF-8 where the codec would skip
    and count it. A dropped connection is retried as redis-py retries a command (reads run
    twice harmlessly).
    """
    pool = client.connection_pool
    packed = pack_commands([("MULTI",), *commands, ("EXEC",)])

    async def run() -> list[Any]:
        await conn.send_packed_command(packed)
        for _ in range(len(commands) + 1):  # +OK, then +QUEUED per command
            await conn.read_response(disable_decoding=True)
        return list(await conn.read_response(disable_decoding=True))

    async def drop(_: Exception) -> None:
        await conn.disconnect()

    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        return await conn.retry.call_with_retry(run, drop)  # type: ignore[no-any-return]
    except BaseException:
        await conn.disconnect(nowait=True)  # replies may be left unread (an error reply raises)
        raise
    finally:
        await pool.release(conn)


class RetentionReader:
    """Reads a user's retained events (with retained broadcasts) from a position on.

    How the position is found is the key layout's (``keys`` picks it,
    :mod:`sse_core.layouts`). In ssewatch's own layout both streams are read from the same
    start id inside one ``MULTI``: the snapshot is consistent with pub/sub order, which is what
    the live hand-over relies on. Cost is proportional to what lies after the start, never to
    the whole stream.

    On a Redis Cluster the two streams live in different slots, which no transaction spans:
    each is read in its own ``MULTI`` on its own node (both at once). That is enough for the
    hand-over, which only needs every read to start after the subscription to that stream's
    channel is confirmed (duplicates are then dropped by id), and completeness is judged per
    stream anyway.
    """

    def __init__(
        self,
        redis_client: RedisClient,
        keys: SSEChannelKeys,
        logger: logging.Logger | None = None,
        on_malformed: Callable[[], None] | None = None,
        *,
        ttl_ms: int | None = None,
    ) -> None:
        self._redis = redis_client
        self._keys = keys
        self.layout = layout_for(keys)
        self._log = logger or logging.getLogger(__name__)
        self._on_malformed = on_malformed
        self.malformed = 0
        # Retention only vouches for its TTL: past it, a whole idle stream may have expired.
        self._ttl_ms = ttl_ms

    @property
    def redis(self) -> RedisClient:
        return self._redis

    def skip_malformed(self, name: str, raw_id: Any, exc: Exception) -> None:
        """Count and log an entry that is not a valid event (readers skip it)."""
        self.malformed += 1
        if self._on_malformed is not None:
            self._on_malformed()
        self._log.warning("skipped malformed entry %r in %s: %s", raw_id, name, exc)

    async def read(self, user_id: UUID, starts: Sequence[StreamId]) -> list[StreamSlice]:
        """Slices of the user's and the broadcast stream, each from its start id on.

        The seek of ssewatch's layout, whose stream ids are the events' times.
        """
        names = [self._keys.user_stream(user_id), self._keys.broadcast_stream()]
        try:
            results = await self._snapshot(self._redis, names, starts)
        except UnicodeDecodeError:
            # A stored value that is not UTF-8, on a client that decodes replies: read the
            # snapshot again as bytes (the codec then skips and counts what is malformed).
            sibling = undecoded_sibling(self._redis)
            if sibling is None:
                raise
            try:
                results = await self._snapshot(sibling, names, starts)
            finally:
                await sibling.aclose()
        return [
            self._slice(name, results[2 * i], results[2 * i + 1]) for i, name in enumerate(names)
        ]

    @classmethod
    async def _snapshot(
        cls, client: RedisClient, names: Sequence[str], starts: Sequence[StreamId]
    ) -> list[Any]:
        """``XINFO STREAM`` and ``XRANGE`` from each start: all in one ``MULTI`` on one server;
        on a cluster one ``MULTI`` per stream (their slots differ), all at once."""
        if isinstance(client, RedisCluster):
            # redis-py 8.1 queues a cluster transaction's commands through asyncio.run in a
            # thread: on a client without its slot map yet, that thread's (then closed) loop
            # would own the node connections. Initialize here first (a no-op once done).
            await client.initialize()
            if len(names) > 1:
                pairs = zip(names, starts, strict=True)
                parts = await asyncio.gather(*(cls._snapshot(client, [n], [s]) for n, s in pairs))
                return [result for part in parts for result in part]
            # redis-py's pipeline: it follows slot moves (the entries arrive as mappings).
            pipe = client.pipeline(transaction=True)
            for name, start in zip(names, starts, strict=True):
                pipe.xinfo_stream(name)
                pipe.xrange(name, min=format_stream_id(start), max="+")
            return list(await pipe.execute(raise_on_error=False))
        commands = [
            command
            for name, start in zip(names, starts, strict=True)
            for command in (
                ("XINFO", "STREAM", name),
                ("XRANGE", name, format_stream_id(start), "+"),
            )
        ]
        return await _raw_transaction(client, commands)

    def _slice(self, name: str, info: Any, rows: Any) -> StreamSlice:
        if isinstance(info, ResponseError) or isinstance(rows, ResponseError):
            return StreamSlice()  # no such key: nothing retained
        entries: list[RetainedEvent] = []
        for raw_id, fields in rows:
            try:
                entries.append(RetainedEvent(parse_stream_id(raw_id), decode_fields(fields)))
            except MalformedEvent as exc:
                self.skip_malformed(name, raw_id, exc)
        first = _info_value(info, "first-entry")
        added = int(_info_value(info, "entries-added") or 0)
        length = int(_info_value(info, "length") or 0)
        return StreamSlice(
            entries=entries,
            first_id=parse_stream_id(first[0]) if first else None,
            trimmed=added > length,
        )

    async def replay(
        self,
        user_id: UUID,
        last_event_id: UUID,
        categories: frozenset[SSEEventCategory] = frozenset(),
    ) -> Replay:
        """Everything retained after ``last_event_id``, and whether that covers the gap."""
        position = Position(uuid7_time_ms(last_event_id), last_event_id)
        return (await self.resume(user_id, position, categories)).public()

    async def resume(
        self,
        user_id: UUID,
        position: Position,
        categories: frozenset[SSEEventCategory] = frozenset(),
    ) -> SourcedReplay:
        """What a consumer at ``position`` has not got yet; reads only from its positions on."""
        slices = await self.layout.read(self, user_id, position)
        replay = select_resume(position, slices, categories)
        if not self.layout.retains_broadcasts:
            replay = dataclasses.replace(replay, includes_broadcasts=False)
        oldest_ms = min(position.start(i)[0] for i in range(len(slices)))
        if replay.complete and self._ttl_ms is not None and oldest_ms < epoch_ms() - self._ttl_ms:
            return dataclasses.replace(replay, complete=False)
        return replay

    async def since(
        self,
        user_id: UUID,
        start_ms: int,
        categories: frozenset[SSEEventCategory] = frozenset(),
    ) -> Replay:
        """Retained events from ``start_ms`` on, and whether retention still holds all of them."""
        slices = await self.layout.read(self, user_id, Position(start_ms))
        replay = select_since(start_ms, slices, categories)
        if not self.layout.retains_broadcasts:
            replay = dataclasses.replace(replay, includes_broadcasts=False)
        return replay

    async def users(self) -> list[UUID]:
        """Users that have retained events (``SCAN``, never ``KEYS``)."""
        found: set[UUID] = set()
        async for key in self._scan(self._keys.user_stream_pattern()):
            user_id = self._keys.parse_user_id_from_stream(key)
            if user_id is not None:
                found.add(user_id)
        return sorted(found, key=str)

    async def _scan(self, pattern: str) -> AsyncIterator[str]:
        async for key in self._redis.scan_iter(match=pattern, count=500, _type="STREAM"):
            yield as_text(key)
