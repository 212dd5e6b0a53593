"""Key layouts: how one deployment names, encodes, publishes and finds events in Redis.

A layout is three things the publisher, the subscriber and the retention reader ask for
instead of branching on a name: the key names (:mod:`sse_core.keys`), the publish command for
one event (a Lua script with its keys and arguments, or a plain ``PUBLISH``), and how replay
finds a position in a retention stream (the seek). The keys class picks the layout:
:class:`~sse_core.keys.SSEChannelKeys` is ssewatch's own, :class:`~sse_core.keys.DashtamChannelKeys`
the seed application's (:mod:`sse_core.dashtam`). ``SSE_KEY_LAYOUT`` chooses one from settings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Literal
from uuid import UUID

from sse_core.batcher import Call, LuaScript
from sse_core.codec import STREAM_FIELDS, EncodedEvent
from sse_core.keys import DashtamChannelKeys, SSEChannelKeys
from sse_core.replay import Position, StreamSlice

if TYPE_CHECKING:
    from sse_core.retention import RetentionReader

LayoutName = Literal["ssewatch", "dashtam"]
LAYOUT_NAMES: Final[tuple[LayoutName, ...]] = ("ssewatch", "dashtam")

# KEYS[1] stream; ARGV: channel, payload, event ms, max len, ttl ms, then the stream field
# values in STREAM_FIELDS order (their names are written into the script: five fewer arguments
# to pack on every publish).
# If another publisher's clock ran ahead, "<ms>-*" is below the stream's top id and XADD
# refuses it; the entry then takes the top id's millisecond, so stream ids never fall below the
# event's own time (the invariant replay's seek relies on).
# The age trim runs on the server's clock (TIME), never the event's: one future-dated event must
# not trim what is retained. Redis 7 replicates scripts by their effects (the only mode since
# 7.0; the default since 5.0), so a non-deterministic read before writes is fine.
_FIELDS_LUA = ", ".join(f"'{name}', ARGV[{6 + i}]" for i, name in enumerate(STREAM_FIELDS))
PUBLISH_SCRIPT = f"""
local key = KEYS[1]
local id = redis.pcall('XADD', key, 'MAXLEN', '~', ARGV[4], ARGV[3] .. '-*', {_FIELDS_LUA})
if type(id) == 'table' and id.err then
  local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  local next_id = '*'  -- emptied stream (XTRIM/XDEL): '*' is never below its last id
  if top[1] then next_id = string.match(top[1][1], '^(%d+)-') .. '-*' end
  id = redis.call('XADD', key, 'MAXLEN', '~', ARGV[4], next_id, {_FIELDS_LUA})
end
local now = redis.call('TIME')
local min_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[5])
if min_ms > 0 then
  redis.call('XTRIM', key, 'MINID', '~', string.format('%d', min_ms))
end
redis.call('PEXPIRE', key, ARGV[5])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""
_SCRIPT = LuaScript(PUBLISH_SCRIPT)


@dataclass(frozen=True, slots=True)
class Retention:
    """Bounds of a retention stream (size and age)."""

    max_len: int
    ttl_ms: int


class KeyLayout(ABC):
    """What differs between deployments; the publisher, subscriber and reader only ask."""

    name: ClassVar[LayoutName]
    retains_broadcasts: ClassVar[bool]
    """``False``: broadcasts are live-only, and :class:`~sse_core.replay.Replay` says so."""

    def __init__(self, keys: SSEChannelKeys) -> None:
        self.keys = keys

    def __repr__(self) -> str:
        return f"<{self.name} layout, prefix {self.keys.prefix!r}>"

    @abstractmethod
    def publish_call(
        self,
        channel: str,
        stream: str | None,
        encoded: EncodedEvent,
        retention: Retention | None,
    ) -> Call:
        """The call for one (encoded) event; ``stream`` or ``retention`` ``None``: live only."""

    def broadcast_stream(self) -> str | None:
        """Where broadcasts are retained, or ``None`` when they are live-only."""
        return self.keys.broadcast_stream() if self.retains_broadcasts else None

    @abstractmethod
    async def read(
        self,
        reader: RetentionReader,
        user_id: UUID,
        position: Position,
    ) -> list[StreamSlice]:
        """Slices (user stream first, then the broadcast stream if retained) from ``position``.

        What :func:`~sse_core.replay.select_resume` needs: each slice holds every retained
        entry after the position's event in that stream (or from its time on), in stream order.
        """


class SsewatchLayout(KeyLayout):
    """ssewatch's own: stream ids are the event's time, so replay seeks straight to an id."""

    name = "ssewatch"
    retains_broadcasts = True

    def publish_call(
        self,
        channel: str,
        stream: str | None,
        encoded: EncodedEvent,
        retention: Retention | None,
    ) -> Call:
        if stream is None or retention is None:
            return Call(None, (channel,), ("PUBLISH", channel, encoded.payload))
        args = (
            channel,
            encoded.payload,
            encoded.event.time_ms,
            retention.max_len,
            retention.ttl_ms,
            *encoded.field_values,
        )
        return Call(_SCRIPT, (stream,), args)

    async def read(
        self, reader: RetentionReader, user_id: UUID, position: Position
    ) -> list[StreamSlice]:
        return await reader.read(user_id, [position.start(0), position.start(1)])


def _registry() -> dict[LayoutName, tuple[type[KeyLayout], type[SSEChannelKeys]]]:
    # Imported here: sse_core.dashtam builds on this module's base classes.
    from sse_core.dashtam import DashtamLayout

    return {
        "ssewatch": (SsewatchLayout, SSEChannelKeys),
        "dashtam": (DashtamLayout, DashtamChannelKeys),
    }


def check_layout_name(name: str) -> LayoutName:
    """``name`` if it is a known layout, else ``ValueError`` naming the valid ones."""
    for known in LAYOUT_NAMES:
        if name == known:
            return known
    raise ValueError(
        f"unknown key layout {name!r}: valid layouts are {', '.join(LAYOUT_NAMES)} (SSE_KEY_LAYOUT)"
    )


def get_layout(name: str = "ssewatch", prefix: str = "sse") -> KeyLayout:
    """The layout called ``name`` with key prefix ``prefix``."""
    layout_cls, keys_cls = _registry()[check_layout_name(name)]
    return layout_cls(keys_cls(prefix))


def layout_for(keys: SSEChannelKeys | None) -> KeyLayout:
    """The layout whose names ``keys`` builds (its class decides; ``None``: the default)."""
    if keys is None:
        return SsewatchLayout(SSEChannelKeys.default())
    # Most derived class first: DashtamChannelKeys is an SSEChannelKeys too.
    for layout_cls, keys_cls in reversed(_registry().values()):
        if isinstance(keys, keys_cls):
            return layout_cls(keys)
    raise TypeError(f"no key layout builds {type(keys).__name__} names")
