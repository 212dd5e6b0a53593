"""A real redis-server restart in the middle of a subscription."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from sse_core import ConnectionState, RedisSSEPublisher, RedisSSESubscriber, SSEEvent
from tests.support.redis_server import RedisServer
from tests.support.streams import Collector, eventually

pytestmark = pytest.mark.redis


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
