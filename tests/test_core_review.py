"""Regression tests from the core semantics review: behaviour that is right today.

(The review's failing findings are in the report; their tests join this file once fixed.)
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import pytest
from fakeredis import FakeAsyncRedis
from redis.asyncio import Redis

from sse_core import (
    ConnectionState,
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSEEvent,
)
from tests.support.streams import Collector, eventually, wait_subscribed

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


def _event(user: UUID, event_type: str = "ai.response.chunk", **data: Any) -> SSEEvent:
    return SSEEvent(event_type=event_type, user_id=user, data=data)


async def test_resume_with_a_category_filter_hands_over_both_streams_exactly_once(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    user = uuid4()
    seen = _event(user, "security.session.new", i=0)
    await publisher.publish(seen)
    await publisher.publish(_event(user, "ai.response.chunk", i=-1))  # filtered out
    await publisher.broadcast(_event(user, "security.password.changed", i=1))
    real_replay = subscriber.retention.resume

    async def replay_with_traffic(*args: Any, **kwargs: Any) -> Any:
        # Between the confirmed subscription and the snapshot (both live and replayed) ...
        await publisher.broadcast(_event(user, "security.password.changed", i=2))
        await publisher.publish(_event(user, "ai.response.chunk", i=-2))
        await publisher.publish(_event(user, "security.session.new", i=3))
        result = await real_replay(*args, **kwargs)
        # ... and after it (live only).
        await publisher.broadcast(_event(user, "security.password.changed", i=4))
        return result

    monkeypatch.setattr(subscriber.retention, "resume", replay_with_traffic)
    collector = Collector(
        subscriber.subscribe(user, categories=["security"], last_event_id=seen.event_id)
    )
    got = await collector.wait_for(4)
    await publisher.publish(_event(user, "security.session.new", i=5))
    got = await collector.wait_for(5)
    await asyncio.sleep(0.2)
    await collector.stop()
    assert [e.data["i"] for e in got] == [1, 2, 3, 4, 5]
    assert len(collector.items) == 5
    assert subscriber.stats.duplicates == 2


async def test_last_subscriber_leaving_during_a_reconnect_leaves_the_hub_idle(
    redis_client: Redis,
) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    user = uuid4()
    collector = Collector(subscriber.subscribe(user))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    await redis_client.client_kill_filter(_type="pubsub")
    await collector.stop()  # while the reader is (or is about to be) reconnecting
    assert subscriber.connection_status().state is ConnectionState.IDLE
    assert subscriber.connection_status().subscriptions == 0
    # The hub opens again cleanly for the next consumer.
    again = Collector(subscriber.subscribe(user))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    event = _event(user)
    await publisher.publish(event)
    assert (await again.wait_for(1))[-1] == event
    await again.stop()
    await eventually(lambda: subscriber.connection_status().state is ConnectionState.IDLE)


async def test_embedded_replay_is_incomplete_when_the_other_stream_was_trimmed() -> None:
    client = FakeAsyncRedis()
    try:
        publisher = RedisSSEPublisher(client, enable_retention=True, retention_max_len=5)
        subscriber = RedisSSESubscriber(client, enable_retention=True)
        user = uuid4()
        last = _event(user)
        await publisher.publish(last)
        shouts = [_event(user, "provider.disconnected", i=i) for i in range(300)]
        await publisher.publish_many(shouts, broadcast=True)
        replay = await subscriber.replay(user, last.event_id)
    finally:
        await client.aclose()
    assert 0 < len(replay.events) < len(shouts)  # broadcasts after `last` were trimmed ...
    assert replay.complete is False  # ... and fakeredis reports it (XINFO entries-added)
    assert replay.events == shouts[-len(replay.events) :]
