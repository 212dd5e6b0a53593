"""The seed application's Redis layout (Dashtam), read and written byte for byte.

What its SSE adapters do (``src/infrastructure/sse/`` in faiyaz7283/dashtam-api):

- channels ``sse:user:<uuid>`` and ``sse:broadcast``; the pub/sub payload is
  ``json.dumps({"event_id", "event_type", "user_id", "data", "occurred_at"})`` (ids as strings,
  ``occurred_at.isoformat()``);
- with retention: ``PUBLISH``, then ``XADD sse:stream:user:<uuid> MAXLEN ~ <n> * event_id <id>
  event_type <type> data <json.dumps(data)> occurred_at <iso>`` (no ``user_id``: the key says
  whose it is; the entry id is the Redis server's clock), then ``EXPIRE <ttl>`` only if the key
  has no TTL yet; broadcasts are not retained.

The publisher here sends exactly those bytes, in one atomic script (same commands, same order),
so the seed's own subscriber and ssewatch's can run side by side during a migration.

Replay cannot derive a stream position from an event id here (entry ids are server time, and
application and Redis clocks differ), so it reads the user's stream backwards from the newest
entry, in pages that double in size, until it meets the client's event: the cost is what was
missed (at most twice that, plus one small page), not what is retained. Neither clock bounds
the search: an event id that is not there (trimmed, expired, or a broadcast, which is never
retained) costs one read of the whole retained stream, as does a position given only as a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from redis.exceptions import ResponseError

from sse_core.batcher import Call, LuaScript
from sse_core.codec import EncodedEvent, MalformedEvent, as_text, decode_fields
from sse_core.events import SSEEvent, seed_json
from sse_core.keys import SSEChannelKeys
from sse_core.layouts import KeyLayout, Retention
from sse_core.replay import Position, RetainedEvent, StreamSlice

if TYPE_CHECKING:
    from sse_core.retention import RetentionReader

FIRST_PAGE = 16  # entries read by the first XREVRANGE of a seek; each further page doubles
MAX_PAGE = 4096

# KEYS[1] the user's stream; ARGV: channel, payload, max len, ttl seconds, then the field
# values event_id, event_type, data, occurred_at. The seed's commands, in the seed's order.
PUBLISH_SCRIPT = """
local receivers = redis.call('PUBLISH', ARGV[1], ARGV[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'event_id', ARGV[5],
  'event_type', ARGV[6], 'data', ARGV[7], 'occurred_at', ARGV[8])
if redis.call('TTL', KEYS[1]) == -1 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return receivers
"""
_SCRIPT = LuaScript(PUBLISH_SCRIPT)


def encode_payload(event: SSEEvent) -> str:
    """The seed's pub/sub message: ``json.dumps(event.to_dict())`` (its ``to_dict``)."""
    return seed_json(
        {
            "event_id": str(event.event_id),
            "event_type": event.event_type.value,
            "user_id": str(event.user_id),
            "data": event.data,
            "occurred_at": event.occurred_at.isoformat(),
        }
    )


def encode_field_values(event: SSEEvent) -> tuple[str, str, str, str]:
    """The seed's stream entry values: event_id, event_type, data (JSON), occurred_at."""
    return (
        str(event.event_id),
        event.event_type.value,
        seed_json(event.data),
        event.occurred_at.isoformat(),
    )


def decode_entry(fields: Mapping[Any, Any], user_id: UUID) -> SSEEvent:
    """One stream entry; the user comes from the stream's key. ``MalformedEvent`` if invalid."""
    return decode_fields({**fields, "user_id": str(user_id)})


class DashtamLayout(KeyLayout):
    """The seed's names, payloads and retention; replay seeks by event id (see module doc)."""

    name = "dashtam"
    retains_broadcasts = False

    def publish_call(
        self,
        channel: str,
        stream: str | None,
        encoded: EncodedEvent,
        retention: Retention | None,
    ) -> Call:
        # The seed's own JSON, not ssewatch's; the publisher has applied the codec's rule.
        event = encoded.event
        payload = encode_payload(event)
        if stream is None or retention is None:
            return Call(None, (channel,), ("PUBLISH", channel, payload))
        ttl_seconds = max(retention.ttl_ms // 1000, 1)
        args = (channel, payload, retention.max_len, ttl_seconds, *encode_field_values(event))
        return Call(_SCRIPT, (stream,), args)

    async def read(
        self, reader: RetentionReader, user_id: UUID, position: Position
    ) -> list[StreamSlice]:
        return [await read_back(reader, self.keys, user_id, position)]


def previous_stream_id(raw: bytes | str) -> str:
    """The largest stream id below ``raw`` (an inclusive bound for the next XREVRANGE page)."""
    text = as_text(raw)
    ms, _, seq = text.partition("-")
    if int(seq or 0) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{int(ms) - 1}-{2**64 - 1}" if int(ms) > 0 else "0-0"


async def read_back(
    reader: RetentionReader, keys: SSEChannelKeys, user_id: UUID, position: Position
) -> StreamSlice:
    """The user's stream from the position's event on (all of it if the event is not there).

    Reading stops at the event the position names (the user-stream cursor, else the anchor id)
    or at the stream's start. Entries are keyed by event time, so
    :func:`~sse_core.replay.select_resume` can still place a position it did not find. The
    slice counts as trimmed whenever the read reached the stream's start: the seed sets a
    stream's TTL once, at creation, so a busy stream vanishes and starts again, and nothing
    records what was lost before its first entry.
    """
    name = keys.user_stream(user_id)
    cursor = position.cursor(0)
    target = cursor[1] if cursor is not None else position.anchor_id
    redis = reader.redis
    pipe = redis.pipeline(transaction=True)
    pipe.exists(name)
    pipe.xrevrange(name, "+", "-", count=FIRST_PAGE)
    exists, rows = await pipe.execute()
    newest_first: list[SSEEvent] = []
    page = FIRST_PAGE
    reached_start = not exists
    while rows:
        done = False
        for raw_id, fields in rows:
            try:
                event = decode_entry(fields, user_id)
            except MalformedEvent as exc:
                reader.skip_malformed(name, raw_id, exc)
                continue
            newest_first.append(event)
            if event.event_id == target:
                done = True
                break
        if done:
            break
        if len(rows) < page:
            reached_start = True
            break
        before = previous_stream_id(rows[-1][0])
        page = min(page * 2, MAX_PAGE)
        try:
            rows = await redis.xrevrange(name, before, "-", count=page)
        except ResponseError:  # the key was deleted or replaced meanwhile
            rows = []
        reached_start = not rows
    entries = [RetainedEvent((e.time_ms, i), e) for i, e in enumerate(reversed(newest_first))]
    first = entries[0].stream_id if entries else None
    return StreamSlice(entries, first, trimmed=reached_start)
