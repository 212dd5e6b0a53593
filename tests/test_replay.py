"""Replay and resume: the pure rules (no Redis), then against a real redis-server (both
decode_responses modes) and the embedded fakeredis: missed events after an id, completeness when
retention was outrun or reset, the hand-over to live without gap or duplicate, and retention's
bounds (size, age on the Redis server's clock, idle expiry).

Issue #9 item 6: one event whose UUIDv7 time was 2 h ahead trimmed that user's stream from 300
entries to 4, because the age trim (``MINID``) was derived from the event's time. The trim now
reads ``TIME`` inside the publish script, and replay still seeks correctly around a far-future id
(see docs/architecture.md, "Far-future ids").
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any
from uuid import UUID, uuid4

import pytest
from fakeredis import FakeAsyncRedis
from redis.asyncio import Redis

from sse_core import (
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSEEvent,
    SSEEventCategory,
    StreamGap,
    uuid7,
)
from sse_core.handover import HandOver
from sse_core.replay import (
    Position,
    RetainedEvent,
    StreamSlice,
    parse_stream_id,
    select_after,
    select_resume,
    select_since,
)
from tests.support.streams import (
    Collector,
    eventually,
    new_event,
    retaining_pair,
    wait_subscribed,
)

KEYS = SSEChannelKeys()
USER = uuid4()
TWO_HOURS_MS = 2 * 3600 * 1000


def _at(ms: int, event_type: str = "ai.response.chunk") -> SSEEvent:
    return SSEEvent(event_id=uuid7(now_ms=ms), event_type=event_type, user_id=USER)


def _slice(
    *events: SSEEvent, trimmed: bool = False, first: tuple[int, int] | None = None
) -> StreamSlice:
    entries = [RetainedEvent((e.time_ms, i), e) for i, e in enumerate(events)]
    first_id = first if first is not None else (entries[0].stream_id if entries else None)
    return StreamSlice(entries, first_id, trimmed)


def _v7(ms: int, counter: int) -> UUID:
    """A UUIDv7 as another process would make it in millisecond ``ms`` (RFC 9562 method 1)."""
    rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    return UUID(int=ms << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b)


def _now_ms() -> int:
    return uuid7().int >> 80


# -- pure rules: positioning, completeness, the hand-over ----------------------------------------


def test_parse_stream_id() -> None:
    assert parse_stream_id(b"1700000000000-3") == (1_700_000_000_000, 3)
    assert parse_stream_id("5") == (5, 0)


def test_merge_interleaves_by_time_and_keeps_stream_order() -> None:
    a1, b1, a2, b2 = _at(1000), _at(1001), _at(1002), _at(1003)
    merged = select_since(0, [_slice(a1, a2), _slice(b1, b2)])
    assert merged.events == [a1, b1, a2, b2]


def test_after_an_id_in_the_user_stream_includes_later_broadcasts() -> None:
    u1, u2, u3 = _at(2000), _at(2002), _at(2004)
    b1, b2 = _at(2001), _at(2003)
    replay = select_after(u1.event_id, 2000, [_slice(u1, u2, u3), _slice(b1, b2)])
    assert replay.events == [b1, u2, b2, u3]
    assert replay.complete


def test_after_an_id_in_the_broadcast_stream() -> None:
    u1, u2 = _at(3000), _at(3002)
    b1 = _at(3001)
    replay = select_after(b1.event_id, 3001, [_slice(u1, u2), _slice(b1)])
    assert replay.events == [u2]
    assert replay.complete


def test_unknown_last_id_is_incomplete_but_returns_what_is_newer() -> None:
    gone = _at(4000)
    newer = _at(4005)
    replay = select_after(gone.event_id, 4000, [_slice(newer, trimmed=True), _slice()])
    assert replay.events == [newer]
    assert replay.complete is False


def test_other_stream_trimmed_past_the_last_id_is_incomplete() -> None:
    u1, u2 = _at(5000), _at(5010)
    b_late = _at(5008)
    trimmed_broadcast = _slice(b_late, trimmed=True, first=(5008, 0))
    replay = select_after(u1.event_id, 5000, [_slice(u1, u2), trimmed_broadcast])
    assert replay.events == [b_late, u2]
    assert replay.complete is False
    untouched = _slice(b_late, trimmed=False, first=(5008, 0))
    assert select_after(u1.event_id, 5000, [_slice(u1, u2), untouched]).complete


def test_category_filter_applies_after_positioning() -> None:
    last = _at(6000, "security.login.failed")
    ai = _at(6001, "ai.response.chunk")
    sec = _at(6002, "security.session.new")
    replay = select_after(
        last.event_id, 6000, [_slice(last, ai, sec)], frozenset({SSEEventCategory.SECURITY})
    )
    assert replay.events == [sec]


def test_select_since_reports_trimming_after_start() -> None:
    e1 = _at(7005)
    assert select_since(7000, [_slice(e1)]).events == [e1]
    assert select_since(7000, [_slice(e1)]).complete
    assert not select_since(7000, [_slice(e1, trimmed=True, first=(7005, 0))]).complete


def test_handover_drops_replayed_duplicates_then_releases() -> None:
    replayed = [_at(10_000), _at(10_001)]
    handover = HandOver(grace_ms=100)
    handover.begin((e.event_id for e in replayed), snapshot_ms=10_001)
    assert not handover.admit(replayed[0])
    fresh = _at(10_002)
    assert handover.admit(fresh)
    assert handover.pending == 1
    assert not handover.admit(replayed[1])
    assert handover.pending == 0
    late = _at(20_000)
    assert handover.admit(late)


def test_handover_releases_memory_once_live_is_past_the_snapshot() -> None:
    handover = HandOver(grace_ms=100)
    never_live = _at(11_000)  # published before the subscription: never arrives live
    handover.begin([never_live.event_id], snapshot_ms=11_000)
    assert handover.admit(_at(11_050))
    assert handover.pending == 1
    assert handover.admit(_at(11_200))
    assert handover.pending == 0


def test_event_id_zero_is_not_a_uuid7() -> None:
    assert UUID(int=0).version is None


def test_cursors_replay_each_stream_after_its_own_last_event() -> None:
    # Two publishers in one millisecond: the broadcast's id sorts before the user events'.
    u1, u2 = _at(12_000), _at(12_000)
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
    gone, kept = _at(13_000), _at(13_005)
    position = Position(12_000, cursors=((gone.time_ms, gone.event_id), None))
    replay = select_resume(position, [_slice(kept, trimmed=True), _slice()])
    assert replay.events == [(0, kept)]
    assert replay.complete is False


def test_resume_anchor_becomes_the_cursor_of_the_stream_holding_it() -> None:
    anchor, u2 = _at(14_000), _at(14_010)
    b1 = _at(14_005)
    replay = select_resume(Position(14_000, anchor.event_id), [_slice(anchor, u2), _slice(b1)])
    assert replay.events == [(1, b1), (0, u2)]
    assert replay.complete
    lost = select_resume(Position(14_000, uuid7(now_ms=14_000)), [_slice(anchor, u2), _slice(b1)])
    assert lost.complete is False


# -- missed events after an id (real redis-server) -----------------------------------------------


@pytest.mark.redis
async def test_get_missed_events_returns_later_user_and_broadcast_events(
    redis_client: Redis,
) -> None:
    publisher, subscriber = retaining_pair(redis_client)
    user, other = uuid4(), uuid4()
    first = new_event(user, i=0)
    await publisher.publish(first)
    later = []
    for event in (new_event(user, i=1), new_event(other, i=2)):
        later.append(event)
        await publisher.publish(event)
    shout = new_event(other, "provider.disconnected")
    await publisher.broadcast(shout)
    later.append(new_event(user, "security.session.new"))
    await publisher.publish(later[2])
    missed = await subscriber.get_missed_events(user, first.event_id)
    assert missed == [later[0], shout, later[2]]
    only_security = await subscriber.get_missed_events(user, first.event_id, ["security"])
    assert only_security == [later[2]]
    assert await subscriber.get_missed_events(user, later[2].event_id) == []
    replay = await subscriber.replay(user, first.event_id)
    assert replay.complete
    assert replay.events == missed
    # A broadcast id is a valid resume point too.
    assert await subscriber.get_missed_events(user, shout.event_id) == [later[2]]


@pytest.mark.redis
async def test_missed_events_empty_without_retention(redis_client: Redis) -> None:
    publisher, subscriber = retaining_pair(redis_client, enable_retention=False)
    user = uuid4()
    first = new_event(user)
    await publisher.publish(first)
    await publisher.publish(new_event(user))
    assert await subscriber.get_missed_events(user, first.event_id) == []
    assert not await redis_client.exists(KEYS.user_stream(user))


@pytest.mark.redis
async def test_replay_seeks_instead_of_scanning(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher, subscriber = retaining_pair(redis_client, retention_max_len=10_000)
    user = uuid4()
    base_ms = (uuid7().int >> 80) - 50_000
    history = [
        SSEEvent(event_id=uuid7(now_ms=base_ms + i), event_type="ai.response.chunk", user_id=user)
        for i in range(5000)
    ]
    await publisher.publish_many(history)
    decoded = 0
    import sse_core.retention as retention

    real_decode = retention.decode_fields

    def counting_decode(fields: Any) -> SSEEvent:
        nonlocal decoded
        decoded += 1
        return real_decode(fields)

    monkeypatch.setattr(retention, "decode_fields", counting_decode)
    missed = await subscriber.get_missed_events(user, history[-11].event_id)
    assert missed == history[-10:]
    assert decoded <= 11  # read from the last id's millisecond, not the 5,000-entry history


@pytest.mark.redis
async def test_replay_seeks_correctly_around_a_far_future_id(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    user = uuid4()
    before = [new_event(user, i=i) for i in range(3)]
    await publisher.publish_many(before)
    future = new_event(user, event_id=uuid7(now_ms=time.time_ns() // 1_000_000 + TWO_HOURS_MS), i=3)
    await publisher.publish(future)
    after = [new_event(user, i=i) for i in range(4, 7)]
    await publisher.publish_many(after)
    # Publication order is kept, and every id is found from its own time: entries published
    # while the future one is the newest share its millisecond instead of going below it.
    resumed = {
        "before the future event": (before[0], [*before[1:], future, *after]),
        "the future event itself": (future, after),
        "after the future event": (after[0], after[1:]),
    }
    for last, expected in resumed.values():
        replay = await subscriber.replay(user, last.event_id)
        assert replay.events == expected
        assert replay.complete


# -- completeness: retention outrun, reset, expired or trimmed -----------------------------------


@pytest.mark.redis
async def test_replay_reports_incomplete_when_retention_was_outrun(redis_client: Redis) -> None:
    publisher, subscriber = retaining_pair(redis_client, retention_max_len=50)
    user = uuid4()
    first = new_event(user)
    await publisher.publish(first)
    for _ in range(5):
        await publisher.publish_many([new_event(user) for _ in range(100)])
    replay = await subscriber.replay(user, first.event_id)
    assert replay.complete is False
    assert 50 <= len(replay.events) < 500
    # The seed's contract still holds: a list of what is retained after the id.
    assert await subscriber.get_missed_events(user, first.event_id) == replay.events


@pytest.mark.redis
async def test_replay_reports_incomplete_after_a_stream_reset(redis_client: Redis) -> None:
    publisher, subscriber = retaining_pair(redis_client)
    user = uuid4()
    first = new_event(user)
    await publisher.publish(first)
    await redis_client.delete(KEYS.user_stream(user))
    after = new_event(user)
    await publisher.publish(after)
    replay = await subscriber.replay(user, first.event_id)
    assert replay.complete is False
    assert replay.events == [after]


@pytest.mark.redis
@pytest.mark.parametrize("protocol", [2, 3])
async def test_replay_reads_retention_state_on_both_protocols(
    redis_url: str, protocol: int
) -> None:
    # Replay reads XINFO STREAM's raw reply, which is a map on RESP3 and a flat list on RESP2.
    async with Redis.from_url(redis_url, protocol=protocol) as client:
        await client.flushall()
        publisher, subscriber = retaining_pair(client, retention_max_len=10)
        user = uuid4()
        events = [new_event(user, i=i) for i in range(300)]
        await publisher.publish_many(events)
        await publisher.broadcast(shout := new_event(uuid4(), "provider.disconnected"))
        outrun = await subscriber.replay(user, events[0].event_id)
        assert outrun.complete is False
        assert outrun.events[-1] == shout
        retained = await subscriber.replay(user, events[-3].event_id)
        assert retained.complete
        assert retained.events == [*events[-2:], shout]


@pytest.mark.redis
async def test_replay_is_incomplete_when_the_broadcast_stream_expired_meanwhile(
    redis_client: Redis,
) -> None:
    """Regression (second read of the core): a broadcast stream that expired between two
    publishes to the user was reported complete."""
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, retention_ttl_seconds=1)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True, retention_ttl_seconds=1)
    user = uuid4()
    last = new_event(user, i=0)
    await publisher.publish(last)
    await publisher.broadcast(new_event(user, "provider.disconnected"))  # rare broadcasts
    broadcast_key = KEYS.broadcast_stream()

    async def broadcast_expired() -> bool:
        await publisher.publish(new_event(user))  # the user stream stays alive (and < 1 node)
        return not await redis_client.exists(broadcast_key)

    await eventually(broadcast_expired, within=5)
    replay = await subscriber.replay(user, last.event_id)
    assert replay.events[0].event_type != "provider.disconnected"  # the broadcast is gone...
    assert replay.complete is False  # ...before the fix: True


async def test_embedded_replay_is_incomplete_when_the_other_stream_was_trimmed() -> None:
    """Guards (core semantics review): the embedded fakeredis reports a trimmed broadcast stream as
    incomplete too (XINFO entries-added)."""
    client = FakeAsyncRedis()
    try:
        publisher = RedisSSEPublisher(client, enable_retention=True, retention_max_len=5)
        subscriber = RedisSSESubscriber(client, enable_retention=True)
        user = uuid4()
        last = new_event(user)
        await publisher.publish(last)
        shouts = [new_event(user, "provider.disconnected", i=i) for i in range(300)]
        await publisher.publish_many(shouts, broadcast=True)
        replay = await subscriber.replay(user, last.event_id)
    finally:
        await client.aclose()
    assert 0 < len(replay.events) < len(shouts)  # broadcasts after `last` were trimmed ...
    assert replay.complete is False  # ... and fakeredis reports it (XINFO entries-added)
    assert replay.events == shouts[-len(replay.events) :]


# -- resume: replay hands over to live without gap or duplicate ----------------------------------


@pytest.mark.redis
async def test_resume_hands_over_to_live_without_gap_or_duplicate(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher, subscriber = retaining_pair(redis_client)
    user = uuid4()
    seen = new_event(user, i=0)
    missed = [new_event(user, i=1), new_event(user, i=2)]
    await publisher.publish(seen)
    for event in missed:
        await publisher.publish(event)
    during = [new_event(user, i=3), new_event(user, i=4)]
    real_replay = subscriber.retention.resume

    async def replay_with_traffic(*args: Any, **kwargs: Any) -> Any:
        # Published after the live subscription is confirmed and before the snapshot: these
        # are both live and in the replay, and must be delivered exactly once.
        await publisher.publish(during[0])
        result = await real_replay(*args, **kwargs)
        await publisher.publish(during[1])  # after the snapshot: live only
        return result

    monkeypatch.setattr(subscriber.retention, "resume", replay_with_traffic)
    collector = Collector(subscriber.subscribe(user, last_event_id=seen.event_id))
    got = await collector.wait_for(4)
    after = new_event(user, i=5)
    await publisher.publish(after)
    got = await collector.wait_for(5)
    assert [e.data["i"] for e in got] == [1, 2, 3, 4, 5]
    await asyncio.sleep(0.2)
    assert len(collector.items) == 5
    assert subscriber.stats.duplicates == 1
    await collector.stop()


@pytest.mark.redis
async def test_resume_with_a_category_filter_hands_over_both_streams_exactly_once(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards (core semantics review): with a filter, user and broadcast events published around
    the snapshot are each delivered exactly once."""
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    user = uuid4()
    seen = new_event(user, "security.session.new", i=0)
    await publisher.publish(seen)
    await publisher.publish(new_event(user, "ai.response.chunk", i=-1))  # filtered out
    await publisher.broadcast(new_event(user, "security.password.changed", i=1))
    real_replay = subscriber.retention.resume

    async def replay_with_traffic(*args: Any, **kwargs: Any) -> Any:
        # Between the confirmed subscription and the snapshot (both live and replayed) ...
        await publisher.broadcast(new_event(user, "security.password.changed", i=2))
        await publisher.publish(new_event(user, "ai.response.chunk", i=-2))
        await publisher.publish(new_event(user, "security.session.new", i=3))
        result = await real_replay(*args, **kwargs)
        # ... and after it (live only).
        await publisher.broadcast(new_event(user, "security.password.changed", i=4))
        return result

    monkeypatch.setattr(subscriber.retention, "resume", replay_with_traffic)
    collector = Collector(
        subscriber.subscribe(user, categories=["security"], last_event_id=seen.event_id)
    )
    got = await collector.wait_for(4)
    await publisher.publish(new_event(user, "security.session.new", i=5))
    got = await collector.wait_for(5)
    await asyncio.sleep(0.2)
    await collector.stop()
    assert [e.data["i"] for e in got] == [1, 2, 3, 4, 5]
    assert len(collector.items) == 5
    assert subscriber.stats.duplicates == 2


@pytest.mark.redis
async def test_resume_without_retention_signals_a_gap(redis_client: Redis) -> None:
    _, subscriber = retaining_pair(redis_client, enable_retention=False)
    collector = Collector(subscriber.stream(uuid4(), last_event_id=uuid7()))
    [gap] = await collector.wait_for(1)
    assert isinstance(gap, StreamGap)
    assert gap.reason == "resume"
    await collector.stop()


@pytest.mark.redis
async def test_overflow_recovery_keeps_a_broadcast_from_the_same_millisecond(
    redis_client: Redis,
) -> None:
    """Regression (second read of the core): overflow recovery replayed in (ms, event id) order and
    lost a broadcast from another process in the same millisecond."""
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True, queue_size=1)
    user = uuid4()
    stream = subscriber.subscribe(user)
    pending = asyncio.ensure_future(anext(stream))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    ms = _now_ms()
    # Process A publishes two user events, then process B a broadcast, all in millisecond ms;
    # B's per-process counter happens to start lower than A's.
    mine = [
        SSEEvent(event_id=_v7(ms, 0x300 + i), event_type="ai.response.chunk", user_id=user)
        for i in range(2)
    ]
    shout = SSEEvent(event_id=_v7(ms, 0x100), event_type="provider.disconnected", user_id=user)
    await publisher.publish(mine[0])
    await publisher.publish(mine[1])  # the consumer is not reading: dropped
    await publisher.broadcast(shout)  # dropped
    assert await asyncio.wait_for(pending, 5) == mine[0]
    try:
        got = [await asyncio.wait_for(anext(stream), 3) for _ in range(2)]
    finally:
        await stream.aclose()
    # Before the fix: the recovery replays after mine[0] in (ms, event id) order; shout sorts before
    # it, so only mine[1] comes and the broadcast is lost (the second read times out).
    assert sorted(map(str, (e.event_id for e in got))) == sorted(
        map(str, (mine[1].event_id, shout.event_id))
    )


# -- retention: bounded by size and by age on the server's clock, idle expiry --------------------


@pytest.mark.redis
async def test_retention_is_bounded_by_size(redis_client: Redis) -> None:
    publisher, _ = retaining_pair(redis_client, retention_max_len=100)
    user = uuid4()
    for _ in range(10):
        await publisher.publish_many([new_event(user) for _ in range(100)])
    length = await redis_client.xlen(KEYS.user_stream(user))
    assert 100 <= length < 300  # MAXLEN ~ trims whole macro nodes


@pytest.mark.redis
async def test_retention_is_bounded_by_age_on_every_append(redis_client: Redis) -> None:
    """Entries two minutes old on the Redis server's clock, kept under a one-hour TTL, are trimmed
    by the next write under a one-minute TTL."""
    keeper = RedisSSEPublisher(redis_client, enable_retention=True, retention_ttl_seconds=3600)
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, retention_ttl_seconds=60)
    user = uuid4()
    server_s, server_us = await redis_client.time()
    server_ms = server_s * 1000 + server_us // 1000
    old = [new_event(user, event_id=uuid7(now_ms=server_ms - 120_000 + i)) for i in range(300)]
    await keeper.publish_many(old)
    assert await redis_client.xlen(KEYS.user_stream(user)) == 300
    await publisher.publish(new_event(user))
    remaining = await redis_client.xrange(KEYS.user_stream(user))
    assert len(remaining) <= 101  # MINID ~ removed the aged-out macro nodes (whole nodes)


@pytest.mark.redis
async def test_idle_expiry_is_refreshed_by_every_write(redis_client: Redis) -> None:
    publisher, _ = retaining_pair(redis_client, retention_ttl_seconds=30)
    user = uuid4()
    await publisher.publish(new_event(user))
    await redis_client.pexpire(KEYS.user_stream(user), 500)
    await publisher.publish(new_event(user))
    assert await redis_client.pttl(KEYS.user_stream(user)) > 25_000


@pytest.mark.redis
async def test_a_future_dated_event_does_not_wipe_retention(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(
        redis_client, enable_retention=True, retention_ttl_seconds=3600, raise_errors=True
    )
    user = uuid4()
    await publisher.publish_many([new_event(user, i=i) for i in range(300)])
    future = new_event(
        user, event_id=uuid7(now_ms=time.time_ns() // 1_000_000 + TWO_HOURS_MS), i=300
    )
    await publisher.publish(future)
    # Before the fix: 4 entries left (MINID = the future event's time minus the one-hour TTL).
    assert await redis_client.xlen(KEYS.user_stream(user)) == 301
