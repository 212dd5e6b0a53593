"""Pure replay logic: where a client's ``Last-Event-ID`` sits and what comes after it.

Works on already-read stream slices, so every rule here is tested without Redis. Stream ids are
``<ms>-<seq>`` with ``ms`` taken from the event's UUIDv7 time (see :mod:`sse_core.publisher`),
so the position of an event is found by starting at its millisecond, not by scanning.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from sse_core.categories import SSEEventCategory
from sse_core.events import SSEEvent, matches_categories

StreamId = tuple[int, int]


def parse_stream_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_stream_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


@dataclass(frozen=True, slots=True)
class RetainedEvent:
    stream_id: StreamId
    event: SSEEvent


@dataclass(frozen=True, slots=True)
class StreamSlice:
    """The entries of one stream from a start id on, and what is known about its trimming."""

    entries: list[RetainedEvent] = field(default_factory=list)
    first_id: StreamId | None = None
    trimmed: bool = False

    def covers(self, start: StreamId) -> bool:
        """Whether every entry ever added at or after ``start`` is still retained."""
        return self.first_id is None or not self.trimmed or self.first_id <= start


@dataclass(frozen=True, slots=True)
class Replay:
    """What a reconnecting client missed.

    ``complete`` is ``False`` when the gap may not be fully covered: the last id is no longer
    retained (aged out, trimmed, or the stream was reset) or the other stream was trimmed past
    it. Like Centrifugo's ``recovered: false``: the client should reload its state.
    """

    events: list[SSEEvent]
    complete: bool


def merge_in_publication_order(*slices: StreamSlice) -> list[RetainedEvent]:
    """Interleave a user's stream and the broadcast stream by time, keeping each stream's order.

    Ties within a millisecond across streams are broken by event id (UUIDv7, creation order).
    """
    return list(
        heapq.merge(
            *(s.entries for s in slices), key=lambda e: (e.stream_id[0], e.event.event_id.int)
        )
    )


def select_after(
    last_event_id: UUID,
    last_ms: int,
    slices: Iterable[StreamSlice],
    categories: frozenset[SSEEventCategory] = frozenset(),
) -> Replay:
    """Events after ``last_event_id`` from slices read starting at its millisecond."""
    slices = list(slices)
    merged = merge_in_publication_order(*slices)
    position = next((i for i, e in enumerate(merged) if e.event.event_id == last_event_id), None)
    if position is None:
        key = (last_ms, last_event_id.int)
        after = [e for e in merged if (e.stream_id[0], e.event.event_id.int) > key]
        complete = False
    else:
        after = merged[position + 1 :]
        holder = next(
            s for s in slices if any(e.event.event_id == last_event_id for e in s.entries)
        )
        complete = all(s.covers((last_ms, 0)) for s in slices if s is not holder)
    return Replay([e.event for e in after if matches_categories(e.event, categories)], complete)


def select_since(
    start_ms: int,
    slices: Iterable[StreamSlice],
    categories: frozenset[SSEEventCategory] = frozenset(),
) -> Replay:
    """Events from ``start_ms`` on (slices read from that millisecond), in publication order."""
    slices = list(slices)
    merged = merge_in_publication_order(*slices)
    complete = all(s.covers((start_ms, 0)) for s in slices)
    return Replay([e.event for e in merged if matches_categories(e.event, categories)], complete)
