"""The shared pub/sub connection (the hub) on a real redis-server: one connection per client,
dropped connections and server restarts survived without losing events, and consumers that come
and go while it subscribes or reconnects leave nothing attached.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

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
)
from sse_core.hub import SubscriptionHub
from tests.support.redis_server import RedisServer
from tests.support.streams import (
    Collector,
    eventually,
    live_collector,
    new_event,
    retaining_pair,
    wait_subscribed,
)

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


# -- one pub/sub connection per client -----------------------------------------------------------


async def test_hub_is_shared_per_client(redis_client: Redis) -> None:
    assert SubscriptionHub.for_client(redis_client) is SubscriptionHub.for_client(redis_client)


async def test_many_subscribers_share_one_pubsub_connection(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    users = [uuid4() for _ in range(100)]
    # Counted against what the server already had: other tests' servers may share it.
    before = {c["id"] for c in await redis_client.client_list()}
    # Request-scoped: every consumer builds its own subscriber on the shared client.
    collectors = [
        Collector(RedisSSESubscriber(redis_client, enable_retention=True).subscribe(u))
        for u in users
    ]
    for user in users:
        await wait_subscribed(redis_client, KEYS.user_channel(user))
    clients = [c for c in await redis_client.client_list() if c["id"] not in before]
    pubsub_clients = [c for c in clients if int(c.get("sub", 0)) > 0]
    assert len(pubsub_clients) == 1
    assert len(clients) <= 5
    shout = new_event(uuid4(), "security.password.changed")
    await publisher.broadcast(shout)
    for collector in collectors:
        assert await collector.wait_for(1) == [shout]
    for collector in collectors:
        await collector.stop()


# -- dropped connections and restarts ------------------------------------------------------------


async def test_dropped_connection_is_survived_and_gap_replayed(redis_client: Redis) -> None:
    publisher, subscriber = retaining_pair(redis_client)
    user = uuid4()
    collector = await live_collector(redis_client, subscriber, user)
    before = new_event(user, i=0)
    await publisher.publish(before)
    await collector.wait_for(1)
    await redis_client.client_kill_filter(_type="pubsub")
    during = [new_event(user, i=i) for i in range(1, 6)]
    await publisher.publish_many(during)  # may land while the subscriber reconnects
    await eventually(lambda: subscriber.connection_status().reconnects >= 1)
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    after = new_event(user, i=6)
    await publisher.publish(after)
    got = await collector.wait_for(7)
    assert [e.data["i"] for e in got] == list(range(7))
    await asyncio.sleep(0.2)
    assert len(collector.items) == 7
    await collector.stop()


async def test_events_missed_while_disconnected_survive_live_traffic_before_the_resync(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (second read of the core): the RESYNC was queued behind live items that arrived
    on the new connection, so the replay started after them and lost the missed events."""
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    user = uuid4()
    channel = KEYS.user_channel(user)
    missed = [new_event(user, i=1), new_event(user, i=2)]
    live = new_event(user, i=3)
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
    await publisher.publish(new_event(user, i=0))
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


async def _publish_until_accepted(publisher: RedisSSEPublisher, event: SSEEvent) -> None:
    for _ in range(100):
        if await publisher.publish(event):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("Redis never accepted the publish after restart")


async def test_subscription_survives_a_server_restart(own_redis_server: RedisServer) -> None:
    client = Redis.from_url(own_redis_server.url)
    publisher = RedisSSEPublisher(client, enable_retention=True)
    subscriber = RedisSSESubscriber(client, enable_retention=True)
    user = uuid4()
    collector = Collector(subscriber.subscribe(user))
    await eventually(lambda: subscriber.connection_status().state is ConnectionState.CONNECTED)
    first = SSEEvent(event_type="sync.accounts.started", user_id=user, data={"i": 0})
    await _publish_until_accepted(publisher, first)
    await collector.wait_for(1)

    own_redis_server.restart(downtime=0.3)  # SHUTDOWN SAVE, then start on the same port
    after = [
        SSEEvent(event_type="sync.accounts.completed", user_id=user, data={"i": i})
        for i in range(1, 4)
    ]
    for event in after:
        await _publish_until_accepted(publisher, event)

    got = await collector.wait_for(4, timeout=20)
    assert [e.data["i"] for e in got] == [0, 1, 2, 3]
    assert subscriber.connection_status().reconnects >= 1
    await asyncio.sleep(0.3)
    assert len(collector.items) == 4
    await collector.stop()
    await client.aclose()


# -- consumers coming and going ------------------------------------------------------------------


async def test_cancelling_a_consumer_during_subscribe_leaves_nothing_attached(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (second read of the core): a consumer cancelled while its SUBSCRIBE was in
    flight leaked its subscription."""
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


async def test_resubscribing_after_the_hub_went_idle_is_not_a_reconnect(
    redis_client: Redis,
) -> None:
    """Regression (second read of the core): the connect callback outlived the pub/sub and fired on
    a pooled connection, so a fresh subscription after idle looked like a reconnect."""
    publisher = RedisSSEPublisher(redis_client)
    subscriber = RedisSSESubscriber(redis_client)  # no retention: a RESYNC is a visible gap
    first = Collector(subscriber.stream(uuid4()))
    await eventually(lambda: subscriber.connection_status().state is ConnectionState.CONNECTED)
    await first.stop()
    assert subscriber.connection_status().state is ConnectionState.IDLE
    user = uuid4()
    second = Collector(subscriber.stream(user))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    event = new_event(user)
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


async def test_last_subscriber_leaving_during_a_reconnect_leaves_the_hub_idle(
    redis_client: Redis,
) -> None:
    """Guards (core semantics review): the last consumer leaving mid-reconnect leaves the hub idle,
    and it opens cleanly again."""
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
    event = new_event(user)
    await publisher.publish(event)
    assert (await again.wait_for(1))[-1] == event
    await again.stop()
    await eventually(lambda: subscriber.connection_status().state is ConnectionState.IDLE)
