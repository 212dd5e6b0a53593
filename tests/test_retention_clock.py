"""Retention's age limit runs on the Redis server's clock, not on the events' own times.

Issue #9 item 6: one event whose UUIDv7 time was 2 h ahead trimmed that user's stream from 300
entries to 4, because the age trim (``MINID``) was derived from the event's time. On the real
redis-server: the trim now reads ``TIME`` inside the publish script, and replay still seeks
correctly around a far-future id (see docs/architecture.md, "Far-future ids").
"""

from __future__ import annotations

import time
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis

from sse_core import RedisSSEPublisher, RedisSSESubscriber, SSEChannelKeys, SSEEvent, uuid7

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()
TWO_HOURS_MS = 2 * 3600 * 1000


def _event(user: UUID, event_id: UUID | None = None, **data: int) -> SSEEvent:
    if event_id is None:
        return SSEEvent(event_type="ai.response.chunk", user_id=user, data=data)
    return SSEEvent(event_id=event_id, event_type="ai.response.chunk", user_id=user, data=data)


async def test_a_future_dated_event_does_not_wipe_retention(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(
        redis_client, enable_retention=True, retention_ttl_seconds=3600, raise_errors=True
    )
    user = uuid4()
    await publisher.publish_many([_event(user, i=i) for i in range(300)])
    future = _event(user, uuid7(now_ms=time.time_ns() // 1_000_000 + TWO_HOURS_MS), i=300)
    await publisher.publish(future)
    # Before the fix: 4 entries left (MINID = the future event's time minus the one-hour TTL).
    assert await redis_client.xlen(KEYS.user_stream(user)) == 301


async def test_the_age_trim_still_drops_what_the_server_clock_says_is_old(
    redis_client: Redis,
) -> None:
    publisher = RedisSSEPublisher(
        redis_client, enable_retention=True, retention_ttl_seconds=60, raise_errors=True
    )
    user = uuid4()
    server_s, server_us = await redis_client.time()
    server_ms = server_s * 1000 + server_us // 1000
    # Ids two minutes behind the *server*: older than the 60 s TTL when they arrive.
    stale = [_event(user, uuid7(now_ms=server_ms - 120_000 + i), i=i) for i in range(300)]
    await publisher.publish_many(stale)
    await publisher.publish(_event(user, i=300))
    assert await redis_client.xlen(KEYS.user_stream(user)) <= 101  # MINID ~: whole nodes


async def test_replay_seeks_correctly_around_a_far_future_id(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    user = uuid4()
    before = [_event(user, i=i) for i in range(3)]
    await publisher.publish_many(before)
    future = _event(user, uuid7(now_ms=time.time_ns() // 1_000_000 + TWO_HOURS_MS), i=3)
    await publisher.publish(future)
    after = [_event(user, i=i) for i in range(4, 7)]
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
