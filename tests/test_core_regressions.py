"""Regressions from the second read of the core: each test failed before its fix.

The "Before the fix" comments say what used to happen.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from sse_core import (
    ConnectionState,
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSEEvent,
    StreamGap,
    uuid7,
)
from sse_core.hub import SubscriptionHub
from tests.support.streams import Collector, eventually, wait_subscribed

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


def _event(user: UUID, event_type: str = "ai.response.chunk", **data: Any) -> SSEEvent:
    return SSEEvent(event_type=event_type, user_id=user, data=data)


def _v7(ms: int, counter: int) -> UUID:
    """A UUIDv7 as another process would make it in millisecond ``ms`` (RFC 9562 method 1)."""
    rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    return UUID(int=ms << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b)


def _now_ms() -> int:
    return uuid7().int >> 80


# -- hub: RESYNC is queued behind live items that arrived on the new connection -------------------


async def test_events_missed_while_disconnected_survive_live_traffic_before_the_resync(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    user = uuid4()
    channel = KEYS.user_channel(user)
    missed = [_event(user, i=1), _event(user, i=2)]
    live = _event(user, i=3)
    armed = False
    real_on_connect = PubSub.on_connect
    real_resubscribe = SubscriptionHub._resubscribe_all

    async def on_connect(self: PubSub, connection: Any) -> None:
        nonlocal armed
        if armed:  # the connection is back but not subscribed yet: these are missed live
            armed = False
            for event in missed:
                await publisher.publish(event)
        await real_on_connect(self, connection)

    async def resubscribe_all(self: SubscriptionHub) -> None:
        # redis-py's on_connect has resubscribed; traffic goes on before the hub's PING.
        await wait_subscribed(redis_client, channel)
        await publisher.publish(live)
        await real_resubscribe(self)

    monkeypatch.setattr(PubSub, "on_connect", on_connect)
    monkeypatch.setattr(SubscriptionHub, "_resubscribe_all", resubscribe_all)
    collector = Collector(subscriber.subscribe(user))
    await wait_subscribed(redis_client, channel)
    await publisher.publish(_event(user, i=0))
    await collector.wait_for(1)
    armed = True
    await redis_client.client_kill_filter(_type="pubsub")
    await eventually(lambda: subscriber.connection_status().reconnects >= 1)
    try:
        got = await collector.wait_for(4, timeout=3)
    finally:
        await collector.stop()
    # Before the fix: [0, 3] — RESYNC replays after event 3, which sorts after the missed 1 and 2.
    assert sorted(e.data["i"] for e in got) == [0, 1, 2, 3]


# -- hub: a consumer cancelled while its SUBSCRIBE is in flight leaks its subscription -----------


async def test_cancelling_a_consumer_during_subscribe_leaves_nothing_attached(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    entered = asyncio.Event()
    real_subscribe = PubSub.subscribe

    async def slow_subscribe(self: PubSub, *args: Any, **kwargs: Any) -> None:
        entered.set()
        await asyncio.sleep(0.5)  # a slow network: the HTTP client goes away meanwhile
        await real_subscribe(self, *args, **kwargs)

    monkeypatch.setattr(PubSub, "subscribe", slow_subscribe)
    collector = Collector(subscriber.stream(uuid4()))
    await asyncio.wait_for(entered.wait(), 5)
    await collector.stop()
    status = subscriber.connection_status()
    # Before the fix: subscriptions == 1 and the hub never went idle (kept its connection).
    assert status.subscriptions == 0
    assert status.state is ConnectionState.IDLE


# -- hub: the connect callback outlives the pub/sub and fires on a pooled connection -------------


async def test_resubscribing_after_the_hub_went_idle_is_not_a_reconnect(
    redis_client: Redis,
) -> None:
    publisher = RedisSSEPublisher(redis_client)
    subscriber = RedisSSESubscriber(redis_client)  # no retention: a RESYNC is a visible gap
    first = Collector(subscriber.stream(uuid4()))
    await eventually(lambda: subscriber.connection_status().state is ConnectionState.CONNECTED)
    await first.stop()
    assert subscriber.connection_status().state is ConnectionState.IDLE
    user = uuid4()
    second = Collector(subscriber.stream(user))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    event = _event(user)
    await publisher.publish(event)
    try:
        got = await second.wait_for(1)
        await asyncio.sleep(0.1)
    finally:
        await second.stop()
    # Before the fix: [StreamGap("reconnected", None), event], reconnects == 1, no drop.
    assert got == [event]
    assert not any(isinstance(i, StreamGap) for i in second.items)
    assert subscriber.connection_status().reconnects == 0


# -- subscriber: recovery after a stored event whose id is not a UUIDv7 ----------------------------


async def test_overflow_after_a_stored_foreign_id_is_recovered(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True, queue_size=1)
    user = uuid4()
    stream = subscriber.subscribe(user)
    pending = asyncio.ensure_future(anext(stream))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    first = _event(user)
    await publisher.publish(first)
    assert await asyncio.wait_for(pending, 5) == first
    # SSEEvent refuses foreign ids; another producer writes one anyway (stream and channel).
    foreign = {
        "event_id": str(uuid4()),
        "event_type": "ai.response.chunk",
        "data": "{}",
        "occurred_at": first.occurred_at.isoformat(),
        "user_id": str(user),
    }
    burst = [_event(user, i=i) for i in range(10)]
    await publisher.publish(burst[0])  # queued; the consumer is not reading
    await redis_client.xadd(KEYS.user_stream(user), foreign)  # type: ignore[arg-type]
    await redis_client.publish(KEYS.user_channel(user), json.dumps({**foreign, "data": {}}))
    await publisher.publish_many(burst[1:])  # overflows: recovered from retention
    await eventually(lambda: subscriber.stats.dropped > 0)
    try:
        # Before the fix: "event id ... is not a UUIDv7" from the recovery ended the stream.
        got = [await asyncio.wait_for(anext(stream), 5) for _ in range(10)]
    finally:
        await stream.aclose()
    assert got == burst
    assert subscriber.stats.malformed >= 2  # the live copy and the retained one


# -- replay: a broadcast and a user event in the same millisecond from two processes -------------


async def test_overflow_recovery_keeps_a_broadcast_from_the_same_millisecond(
    redis_client: Redis,
) -> None:
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


# -- publisher: NOSCRIPT retry re-runs the calls that already succeeded -------------------------
# (now in tests/test_publish_batching.py: test_noscript_resends_only_the_calls_that_did_not_run)


# -- publisher: the clock-skew fallback assumes the stream has a top entry ----------------------


async def test_publish_into_an_emptied_stream_whose_last_id_is_ahead(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    user = uuid4()
    ahead = SSEEvent(
        event_id=uuid7(now_ms=_now_ms() + 60_000), event_type="ai.response.chunk", user_id=user
    )
    await publisher.publish(ahead)  # a publisher whose clock runs a minute ahead
    await redis_client.xtrim(KEYS.user_stream(user), maxlen=0)  # an operator clears history
    # Before the fix: SSEPublishError "attempt to index a nil value" (XREVRANGE is empty).
    assert await publisher.publish(_event(user))
    assert await redis_client.xlen(KEYS.user_stream(user)) == 1


# -- replay completeness ------------------------------------------------------------------------


async def test_replay_is_incomplete_when_the_broadcast_stream_expired_meanwhile(
    redis_client: Redis,
) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, retention_ttl_seconds=1)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True, retention_ttl_seconds=1)
    user = uuid4()
    last = _event(user, i=0)
    await publisher.publish(last)
    await publisher.broadcast(_event(user, "provider.disconnected"))  # rare broadcasts
    broadcast_key = KEYS.broadcast_stream()

    async def broadcast_expired() -> bool:
        await publisher.publish(_event(user))  # the user stream stays alive (and < 1 node)
        return not await redis_client.exists(broadcast_key)

    await eventually(broadcast_expired, within=5)
    replay = await subscriber.replay(user, last.event_id)
    assert replay.events[0].event_type != "provider.disconnected"  # the broadcast is gone...
    assert replay.complete is False  # ...before the fix: True
