"""Fast disconnects never leave a subscription behind, whatever redis-py does with cancellation.

Issue #9 item 3: ``GET /events`` with ``Connection: close``, read the first chunk, close: most
such requests left the user's channel subscribed (4,000 requests left 3,696 channels). redis-py
8.1 sends commands through ``asyncio.wait_for``, which on Python 3.11 swallows a cancellation
that lands as the command completes, so the hub's attach returned normally to a cancelled task
and the stream then waited on its mailbox forever. All on the real redis-server.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError

from sse_core import (
    ConnectionState,
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSEEvent,
    SSESettings,
)
from sse_core.http import TokenSigner
from sse_core.http.tornado import event_routes
from sse_core.hub import SubscriptionHub
from tests.support.polling import eventually
from tests.support.sse_http import (
    hub_subscriptions,
    new_secret,
    open_read_first_chunk_close,
    tornado_server,
)
from tests.support.streams import Collector, wait_subscribed

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


async def _server_channels(redis: Redis, users: list[UUID]) -> list[str]:
    """The users' channels that the server still has subscribers on (``PUBSUB CHANNELS``)."""
    ours = {KEYS.user_channel(u) for u in users}
    names = [n.decode() if isinstance(n, bytes) else n for n in await redis.pubsub_channels()]
    return [n for n in names if n in ours]


async def _settled_numsub(redis: Redis, users: list[UUID]) -> int:
    """``PUBSUB NUMSUB`` summed over the users' channels, once it reaches 0 or after 5 s.

    redis-py drops the pub/sub connection when a send is cancelled mid-write; the server then
    forgets that connection's channels, and the hub's reconnect reconciles, a moment later.
    """
    for _ in range(100):
        count = await _numsub(redis, users)
        if not count:
            break
        await asyncio.sleep(0.05)
    return count


async def _numsub(redis: Redis, users: list[UUID]) -> int:
    channels = [KEYS.user_channel(u) for u in users]
    return sum(int(count) for _, count in await redis.pubsub_numsub(*channels))


async def test_fast_disconnects_from_events_leave_no_channel_subscribed(redis: Redis) -> None:
    secret = new_secret()
    signer = TokenSigner(secret)
    routes = event_routes(redis, SSESettings(token_secret=secret, heartbeat_seconds=3600))
    users = [uuid4() for _ in range(200)]
    async with tornado_server(routes) as base:
        for user in users:
            first = await open_read_first_chunk_close(
                base, f"/events?token={signer.mint(user, 300)}"
            )
            assert first.startswith(b"HTTP/1.1 200")
        # Before the fix: ~all 200 stayed subscribed, each stream waiting for an event forever.
        await eventually(lambda: hub_subscriptions(redis) == 0, within=10, what="every detach")
        assert await _server_channels(redis, users) == []
        assert await _settled_numsub(redis, users) == 0
        # The connection is released by the hub's own task, a moment after the last detach.
        hub = SubscriptionHub.for_client(redis)
        await eventually(lambda: hub.status().state is ConnectionState.IDLE, what="an idle hub")


async def test_consumers_cancelled_anywhere_in_attach_leave_nothing(redis_client: Redis) -> None:
    """Cancel at every loop iteration of the attach (0..11 steps in), many times over."""
    subscriber = RedisSSESubscriber(redis_client)
    keeper = Collector(subscriber.stream(uuid4()))  # keeps the shared connection open
    await eventually(lambda: subscriber.connection_status().subscriptions == 1)
    users: list[UUID] = []
    for steps in range(12):
        for _ in range(10):
            users.append(uuid4())
            stream = subscriber.stream(users[-1])
            task = asyncio.ensure_future(anext(stream))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            # Before the fix: the task never finished (cancellation swallowed, then a wait on
            # a mailbox nobody fills) and the channel stayed subscribed.
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done, f"a consumer cancelled {steps} steps into attach never finished"
            assert task.cancelled()
            await stream.aclose()
    await eventually(lambda: subscriber.connection_status().subscriptions == 1, within=5)
    assert await _settled_numsub(redis_client, users) == 0
    await keeper.stop()
    await eventually(lambda: subscriber.connection_status().state is ConnectionState.IDLE)
    assert await _server_channels(redis_client, users) == []


async def _cancel_during_subscribe(
    redis: Redis, monkeypatch: pytest.MonkeyPatch, swallow: Any
) -> None:
    subscriber = RedisSSESubscriber(redis)
    entered = asyncio.Event()
    real_subscribe = PubSub.subscribe

    async def library_subscribe(self: PubSub, *args: Any, **kwargs: Any) -> Any:
        entered.set()
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            swallow()
        return await real_subscribe(self, *args, **kwargs)

    monkeypatch.setattr(PubSub, "subscribe", library_subscribe)
    user = uuid4()
    task = asyncio.ensure_future(anext(subscriber.stream(user)))
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done
    assert task.cancelled()
    await eventually(lambda: subscriber.connection_status().state is ConnectionState.IDLE)
    assert await _settled_numsub(redis, [user]) == 0


async def test_a_library_that_swallows_the_cancellation_cannot_leak(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _cancel_during_subscribe(redis_client, monkeypatch, swallow=lambda: None)


async def test_a_library_that_turns_the_cancellation_into_an_error_cannot_leak(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hide() -> None:
        raise RedisConnectionError("connection reset")  # without the check: retried forever

    await _cancel_during_subscribe(redis_client, monkeypatch, swallow=hide)


def _lose_unsubscribes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every UNSUBSCRIBE fails as on a dying connection (redis-py keeps the channel listed)."""

    def lost_unsubscribe(self: PubSub, *args: Any) -> Any:
        async def fail() -> None:
            raise RedisConnectionError("UNSUBSCRIBE lost")

        return fail()

    monkeypatch.setattr(PubSub, "unsubscribe", lost_unsubscribe)


async def _leave_with_a_lost_unsubscribe(
    redis: Redis, subscriber: RedisSSESubscriber, monkeypatch: pytest.MonkeyPatch
) -> UUID:
    gone_user = uuid4()
    leaving = Collector(subscriber.stream(gone_user))
    await wait_subscribed(redis, KEYS.user_channel(gone_user))
    with monkeypatch.context() as patch:
        _lose_unsubscribes(patch)
        await leaving.stop()
        assert await _numsub(redis, [gone_user]) == 1  # the server still sends it to us
    return gone_user


async def test_a_channel_whose_unsubscribe_was_lost_is_unsubscribed_when_it_speaks(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = RedisSSEPublisher(redis_client)
    subscriber = RedisSSESubscriber(redis_client)
    keeper = Collector(subscriber.stream(uuid4()))
    gone_user = await _leave_with_a_lost_unsubscribe(redis_client, subscriber, monkeypatch)
    event = SSEEvent(event_type="ai.response.chunk", user_id=gone_user)
    await publisher.publish(event)  # a message nobody wants: the hub unsubscribes the channel

    async def unsubscribed() -> bool:
        return await _numsub(redis_client, [gone_user]) == 0

    await eventually(unsubscribed, what="the hub to unsubscribe the unwanted channel")
    await keeper.stop()


async def test_a_reconnect_does_not_restore_a_channel_nobody_wants(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscriber = RedisSSESubscriber(redis_client)
    kept_user = uuid4()
    keeper = Collector(subscriber.stream(kept_user))
    gone_user = await _leave_with_a_lost_unsubscribe(redis_client, subscriber, monkeypatch)
    await redis_client.client_kill_filter(_type="pubsub")
    await eventually(lambda: subscriber.connection_status().reconnects >= 1, what="reconnect")
    # redis-py restored every channel it still listed; the hub unsubscribed the unwanted one.

    async def settled() -> bool:
        counts = [await _numsub(redis_client, [u]) for u in (kept_user, gone_user)]
        return counts == [1, 0]

    await eventually(settled, what="only the wanted channel subscribed after the reconnect")
    await keeper.stop()
