"""Pure replay rules, the bounded mailbox and the hand-over de-duplication (no Redis)."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest

from sse_core import SSEEvent, SSEEventCategory, uuid7
from sse_core.handover import HandOver
from sse_core.mailbox import OVERFLOW, RESYNC, Mailbox
from sse_core.replay import (
    Position,
    RetainedEvent,
    StreamSlice,
    parse_stream_id,
    select_after,
    select_resume,
    select_since,
)

USER = uuid4()


def _event(ms: int, event_type: str = "ai.response.chunk") -> SSEEvent:
    return SSEEvent(event_id=uuid7(now_ms=ms), event_type=event_type, user_id=USER)


def _slice(
    *events: SSEEvent, trimmed: bool = False, first: tuple[int, int] | None = None
) -> StreamSlice:
    entries = [RetainedEvent((e.time_ms, i), e) for i, e in enumerate(events)]
    first_id = first if first is not None else (entries[0].stream_id if entries else None)
    return StreamSlice(entries, first_id, trimmed)


def test_parse_stream_id() -> None:
    assert parse_stream_id(b"1700000000000-3") == (1_700_000_000_000, 3)
    assert parse_stream_id("5") == (5, 0)


def test_merge_interleaves_by_time_and_keeps_stream_order() -> None:
    a1, b1, a2, b2 = _event(1000), _event(1001), _event(1002), _event(1003)
    merged = select_since(0, [_slice(a1, a2), _slice(b1, b2)])
    assert merged.events == [a1, b1, a2, b2]


def test_after_an_id_in_the_user_stream_includes_later_broadcasts() -> None:
    u1, u2, u3 = _event(2000), _event(2002), _event(2004)
    b1, b2 = _event(2001), _event(2003)
    replay = select_after(u1.event_id, 2000, [_slice(u1, u2, u3), _slice(b1, b2)])
    assert replay.events == [b1, u2, b2, u3]
    assert replay.complete


def test_after_an_id_in_the_broadcast_stream() -> None:
    u1, u2 = _event(3000), _event(3002)
    b1 = _event(3001)
    replay = select_after(b1.event_id, 3001, [_slice(u1, u2), _slice(b1)])
    assert replay.events == [u2]
    assert replay.complete


def test_unknown_last_id_is_incomplete_but_returns_what_is_newer() -> None:
    gone = _event(4000)
    newer = _event(4005)
    replay = select_after(gone.event_id, 4000, [_slice(newer, trimmed=True), _slice()])
    assert replay.events == [newer]
    assert replay.complete is False


def test_other_stream_trimmed_past_the_last_id_is_incomplete() -> None:
    u1, u2 = _event(5000), _event(5010)
    b_late = _event(5008)
    trimmed_broadcast = _slice(b_late, trimmed=True, first=(5008, 0))
    replay = select_after(u1.event_id, 5000, [_slice(u1, u2), trimmed_broadcast])
    assert replay.events == [b_late, u2]
    assert replay.complete is False
    untouched = _slice(b_late, trimmed=False, first=(5008, 0))
    assert select_after(u1.event_id, 5000, [_slice(u1, u2), untouched]).complete


def test_category_filter_applies_after_positioning() -> None:
    last = _event(6000, "security.login.failed")
    ai = _event(6001, "ai.response.chunk")
    sec = _event(6002, "security.session.new")
    replay = select_after(
        last.event_id, 6000, [_slice(last, ai, sec)], frozenset({SSEEventCategory.SECURITY})
    )
    assert replay.events == [sec]


def test_select_since_reports_trimming_after_start() -> None:
    e1 = _event(7005)
    assert select_since(7000, [_slice(e1)]).events == [e1]
    assert select_since(7000, [_slice(e1)]).complete
    assert not select_since(7000, [_slice(e1, trimmed=True, first=(7005, 0))]).complete


async def test_mailbox_overflow_is_signalled_after_queued_items() -> None:
    box: Mailbox[int] = Mailbox(capacity=3)
    assert all(box.put(i) for i in range(3))
    assert not box.put(3)
    assert not box.put(4)  # still overflowed until drained
    assert box.dropped == 2
    assert [await box.get() for _ in range(3)] == [0, 1, 2]
    assert await box.get() is OVERFLOW
    assert box.put(5)
    assert await box.get() == 5


async def test_mailbox_signals_are_never_dropped_and_wake_the_consumer() -> None:
    box: Mailbox[int] = Mailbox(capacity=1)
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.signal(RESYNC)
    assert await asyncio.wait_for(getter, 1) is RESYNC
    box.put(1)
    box.signal(RESYNC)
    assert [await box.get(), await box.get()] == [1, RESYNC]
    with pytest.raises(ValueError, match="capacity"):
        Mailbox(0)


def test_handover_drops_replayed_duplicates_then_releases() -> None:
    replayed = [_event(10_000), _event(10_001)]
    handover = HandOver(grace_ms=100)
    handover.begin((e.event_id for e in replayed), snapshot_ms=10_001)
    assert not handover.admit(replayed[0])
    fresh = _event(10_002)
    assert handover.admit(fresh)
    assert handover.pending == 1
    assert not handover.admit(replayed[1])
    assert handover.pending == 0
    late = _event(20_000)
    assert handover.admit(late)


def test_handover_releases_memory_once_live_is_past_the_snapshot() -> None:
    handover = HandOver(grace_ms=100)
    never_live = _event(11_000)  # published before the subscription: never arrives live
    handover.begin([never_live.event_id], snapshot_ms=11_000)
    assert handover.admit(_event(11_050))
    assert handover.pending == 1
    assert handover.admit(_event(11_200))
    assert handover.pending == 0


def test_event_id_zero_is_not_a_uuid7() -> None:
    assert UUID(int=0).version is None


def test_cursors_replay_each_stream_after_its_own_last_event() -> None:
    # Two publishers in one millisecond: the broadcast's id sorts before the user events'.
    u1, u2 = _event(12_000), _event(12_000)
    # Same millisecond, counter and random bits zeroed: still a UUIDv7, and sorts before u1.
    first_in_ms = u1.event_id.int & ~((0xFFF << 64) | ((1 << 62) - 1))
    shout = SSEEvent(event_id=UUID(int=first_in_ms), event_type="ai.response.chunk", user_id=USER)
    user, broadcast = _slice(u1, u2), _slice(shout)
    # The consumer got u1 only: one merged position would drop the broadcast (it sorts first).
    got_u1 = Position(11_000, cursors=((u1.time_ms, u1.event_id), None))
    assert sorted(select_resume(got_u1, [user, broadcast]).events, key=lambda p: p[0]) == [
        (0, u2),
        (1, shout),
    ]
    # The consumer got the broadcast and u1: nothing is repeated.
    got_both = Position(
        11_000, cursors=((u1.time_ms, u1.event_id), (shout.time_ms, shout.event_id))
    )
    replay = select_resume(got_both, [user, broadcast])
    assert replay.events == [(0, u2)]
    assert replay.complete


def test_cursor_no_longer_retained_is_incomplete() -> None:
    gone, kept = _event(13_000), _event(13_005)
    position = Position(12_000, cursors=((gone.time_ms, gone.event_id), None))
    replay = select_resume(position, [_slice(kept, trimmed=True), _slice()])
    assert replay.events == [(0, kept)]
    assert replay.complete is False


def test_resume_anchor_becomes_the_cursor_of_the_stream_holding_it() -> None:
    anchor, u2 = _event(14_000), _event(14_010)
    b1 = _event(14_005)
    replay = select_resume(Position(14_000, anchor.event_id), [_slice(anchor, u2), _slice(b1)])
    assert replay.events == [(1, b1), (0, u2)]
    assert replay.complete
    lost = select_resume(Position(14_000, uuid7(now_ms=14_000)), [_slice(anchor, u2), _slice(b1)])
    assert lost.complete is False
