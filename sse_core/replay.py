"""Pure replay logic: where a client's ``Last-Event-ID`` sits and what comes after it.

Works on already-read stream slices, so every rule here is tested without Redis. Stream ids are
``<ms>-<seq>`` with ``ms`` taken from the event's UUIDv7 time (see :mod:`sse_core.publisher`),
so the position of an event is found by starting at its millisecond, not by scanning.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from sse_core.categories import SSEEventCategory
from sse_core.events import SSEEvent, matches_categories

StreamId = tuple[int, int]


def parse_stream_id(raw: bytes | str) -> StreamId:
    # int() parses ASCII digits from bytes too: no decoding per replayed entry.
    ms, _, seq = raw.partition(b"-") if isinstance(raw, bytes) else raw.partition("-")
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

    ``includes_broadcasts`` is ``False`` where the key layout does not retain broadcasts (the
    seed's, ``dashtam``): broadcasts sent during the gap are not in ``events``, and
    ``complete`` speaks for the user's own events only.
    """

    events: list[SSEEvent]
    complete: bool
    includes_broadcasts: bool = True


Cursor = tuple[int, UUID]  # (time ms, id) of the last event a consumer got from one stream


@dataclass(frozen=True, slots=True)
class Position:
    """Where a consumer stands, for replaying what it has not got yet.

    ``anchor_ms`` / ``anchor_id`` is where it started: a client's ``Last-Event-ID`` (found in
    whichever stream holds it), or just a time when ``anchor_id`` is ``None``. ``cursors`` holds,
    per stream (user, broadcast), the last event it got from that stream since then. A cursor
    is exact even when events of both streams share a millisecond, which one position merged
    across streams is not.
    """

    anchor_ms: int
    anchor_id: UUID | None = None
    cursors: tuple[Cursor | None, ...] = ()

    def cursor(self, index: int) -> Cursor | None:
        return self.cursors[index] if index < len(self.cursors) else None

    def start(self, index: int) -> StreamId:
        """Where to start reading a stream: its cursor's millisecond, or the anchor's."""
        cursor = self.cursor(index)
        return (cursor[0] if cursor else self.anchor_ms, 0)


@dataclass(frozen=True, slots=True)
class SourcedReplay:
    """A replay whose events say which stream (index into the slices) they came from."""

    events: list[tuple[int, SSEEvent]]
    complete: bool
    includes_broadcasts: bool = True

    def public(self) -> Replay:
        return Replay([event for _, event in self.events], self.complete, self.includes_broadcasts)


def _key(entry: RetainedEvent) -> tuple[int, int]:
    return entry.stream_id[0], entry.event.event_id.int


def select_resume(
    position: Position,
    slices: Sequence[StreamSlice],
    categories: frozenset[SSEEventCategory] = frozenset(),
) -> SourcedReplay:
    """What a consumer at ``position`` has not got yet, from slices read at ``start(i)``.

    Without an ``anchor_id`` the anchor is inclusive: events from ``anchor_ms`` on.
    """
    anchor_key = (position.anchor_ms, position.anchor_id.int if position.anchor_id else -1)
    anchor_found = position.anchor_id is None
    anchor_needed = False
    complete = True
    taken: list[list[tuple[int, RetainedEvent]]] = []
    for index, s in enumerate(slices):
        cursor = position.cursor(index)
        anchor_id = position.anchor_id
        found = None
        if cursor is None and anchor_id is not None:
            found = _find(s, anchor_id)
            if found is not None:
                cursor, anchor_found = (position.anchor_ms, anchor_id), True
        if cursor is not None:
            if found is None:
                found = _find(s, cursor[1])
            if found is None:
                after = [e for e in s.entries if _key(e) > (cursor[0], cursor[1].int)]
                complete = False
            else:
                after = s.entries[found + 1 :]
        else:
            anchor_needed = True
            after = [e for e in s.entries if _key(e) > anchor_key]
            complete = complete and s.covers((position.anchor_ms, 0))
        taken.append([(index, e) for e in after])
    if anchor_needed and not anchor_found:
        complete = False
    merged = heapq.merge(*taken, key=lambda pair: _key(pair[1]))
    if categories:
        events = [(i, e.event) for i, e in merged if matches_categories(e.event, categories)]
    else:
        events = [(i, e.event) for i, e in merged]
    return SourcedReplay(events, complete)


def _find(s: StreamSlice, event_id: UUID) -> int | None:
    # Compared as ints: UUID.__eq__ is Python code, run once per retained entry here.
    wanted = event_id.int
    return next((i for i, e in enumerate(s.entries) if e.event.event_id.int == wanted), None)


def select_after(
    last_event_id: UUID,
    last_ms: int,
    slices: Sequence[StreamSlice],
    categories: frozenset[SSEEventCategory] = frozenset(),
) -> Replay:
    """Events after ``last_event_id`` from slices read starting at its millisecond."""
    return select_resume(Position(last_ms, last_event_id), slices, categories).public()


def select_since(
    start_ms: int,
    slices: Sequence[StreamSlice],
    categories: frozenset[SSEEventCategory] = frozenset(),
) -> Replay:
    """Events from ``start_ms`` on (slices read from that millisecond), in publication order."""
    return select_resume(Position(start_ms), slices, categories).public()
