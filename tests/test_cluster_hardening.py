"""The #9 guarantees on a real Redis Cluster: consumers that vanish while subscribing leave no
shard subscription behind (whatever redis-py does with the cancellation), and poison in a
stream or on a shard channel is skipped and counted, on bytes and on decoding clients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from sse_core import ConnectionState, RedisSSEPublisher, RedisSSESubscriber, SSEChannelKeys
from sse_core.cluster_hub import ClusterHub, hub_for
from sse_core.http import TokenSigner
from sse_core.http.tornado import event_routes
from sse_core.settings import SSESettings
from tests.support.poison import POISON_DATA, good_event, poisoned_stream, raw_entry, raw_payload
from tests.support.redis_cluster import LocalCluster
from tests.support.sse_http import (
    hub_subscriptions,
    new_secret,
    open_read_first_chunk_close,
    tornado_server,
)
from tests.support.streams import Collector, eventually

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


def _ours(cluster: LocalCluster, users: list[UUID]) -> set[str]:
    """The users' shard channels that some primary still has a subscriber on."""
    return cluster.shard_channels() & {KEYS.user_channel(u) for u in users}


async def test_consumers_cancelled_anywhere_in_attach_leave_nothing_on_the_cluster(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    """Cancel at every loop iteration of the attach (0..15 steps in), several times over."""
    subscriber = RedisSSESubscriber(cluster_client)
    keeper = Collector(subscriber.stream(uuid.uuid4()).__aiter__())
    await eventually(lambda: subscriber.connection_status().subscriptions == 1)
    users: list[UUID] = []
    for steps in range(16):
        for _ in range(5):
            users.append(uuid.uuid4())
            stream = subscriber.stream(users[-1])
            task = asyncio.ensure_future(anext(stream))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done, f"a consumer cancelled {steps} steps into attach never finished"
            assert task.cancelled()
            await stream.aclose()
    await eventually(lambda: subscriber.connection_status().subscriptions == 1, within=5)
    await eventually(lambda: not _ours(redis_cluster, users))
    await keeper.stop()
    hub = hub_for(cluster_client)
    assert isinstance(hub, ClusterHub)
    await eventually(lambda: hub.status().state is ConnectionState.IDLE)
    assert hub.nodes == []


def _hide_cancellation() -> None:
    raise RedisConnectionError("connection reset")  # without the check: retried forever


@pytest.mark.parametrize(
    "swallow",
    [lambda: None, _hide_cancellation],
    ids=["swallowed", "turned-into-an-error"],
)
async def test_a_library_that_hides_the_cancellation_cannot_leak_on_the_cluster(
    redis_cluster: LocalCluster,
    cluster_client: RedisCluster,
    monkeypatch: pytest.MonkeyPatch,
    swallow: Callable[[], None],
) -> None:
    subscriber = RedisSSESubscriber(cluster_client)
    user = uuid.uuid4()
    channel = KEYS.user_channel(user)
    entered = asyncio.Event()
    real_send = AbstractConnection.send_command

    async def library_send(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        if args[:2] == ("SSUBSCRIBE", channel):
            entered.set()
            try:
                await asyncio.sleep(0.5)
            except asyncio.CancelledError:
                swallow()
        return await real_send(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_command", library_send)
    task = asyncio.ensure_future(anext(subscriber.stream(user)))
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done
    assert task.cancelled()
    await eventually(lambda: subscriber.connection_status().state is ConnectionState.IDLE)
    await eventually(lambda: not _ours(redis_cluster, [user]))


async def test_fast_disconnects_from_events_leave_no_shard_channel(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    secret = new_secret()
    signer = TokenSigner(secret)
    routes = event_routes(cluster_client, SSESettings(token_secret=secret, heartbeat_seconds=3600))
    users = [uuid.uuid4() for _ in range(60)]
    async with tornado_server(routes) as base:
        for user in users:
            path = f"/events?token={signer.mint(user, 300)}"
            first = await open_read_first_chunk_close(base, path)
            assert first.startswith(b"HTTP/1.1 200")
        await eventually(lambda: hub_subscriptions(cluster_client) == 0, what="every detach")
        await eventually(lambda: not _ours(redis_cluster, users), what="no shard channel left")
        assert hub_for(cluster_client).status().state is ConnectionState.IDLE


async def test_a_message_on_a_channel_nobody_wants_unsubscribes_it(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    """A shard subscription left on a connection (as a lost SUNSUBSCRIBE would leave it) is
    dropped when a message arrives on it."""
    subscriber = RedisSSESubscriber(cluster_client)
    kept = uuid.uuid4()
    keeper = Collector(subscriber.stream(kept).__aiter__())
    hub = hub_for(cluster_client)
    assert isinstance(hub, ClusterHub)
    await eventually(lambda: hub.carrier(KEYS.user_channel(kept)) is not None)
    node = cluster_client.get_node_from_key(KEYS.user_channel(kept))
    assert node is not None
    gone = next(
        u
        for u in iter(uuid.uuid4, None)
        if cluster_client.get_node_from_key(KEYS.user_channel(u)) == node
    )
    link = hub._links[node.name]
    await link.send("SSUBSCRIBE", KEYS.user_channel(gone))  # on the server, wanted by nobody
    await eventually(lambda: redis_cluster.shard_subscribers(KEYS.user_channel(gone)) == 1)
    await RedisSSEPublisher(cluster_client).publish(good_event(gone))
    await eventually(lambda: redis_cluster.shard_subscribers(KEYS.user_channel(gone)) == 0)
    assert redis_cluster.shard_subscribers(KEYS.user_channel(kept)) == 1
    await keeper.stop()


@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decode_responses"])
async def test_poison_is_skipped_and_counted_on_the_cluster(
    redis_cluster: LocalCluster, cluster_client: RedisCluster, decode: bool
) -> None:
    client = cluster_client
    if decode:
        client = await RedisCluster.from_url(redis_cluster.url, decode_responses=True).initialize()
    try:
        publisher = RedisSSEPublisher(client, enable_retention=True, raise_errors=True)
        subscriber = RedisSSESubscriber(client, enable_retention=True)
        user = uuid.uuid4()
        first, good = await poisoned_stream(client, publisher, user)
        # Not UTF-8 at all: a decoding client would raise before our codec saw it.
        entry: dict[Any, Any] = {**raw_entry(user, "{}"), "data": b"\xff\xfe"}
        await client.xadd(KEYS.user_stream(user), entry)
        last = good_event(user, i="after")
        await publisher.publish(last)
        good.append(last)
        poison = len(POISON_DATA) + 1
        replay = await subscriber.replay(user, first.event_id)
        assert replay.events == good
        assert replay.complete
        assert subscriber.stats.malformed == poison

        collector = Collector(subscriber.subscribe(user, last_event_id=first.event_id))
        try:
            assert await collector.wait_for(len(good)) == good
            await eventually(lambda: redis_cluster.shard_subscribers(KEYS.user_channel(user)) == 1)
            for data in POISON_DATA.values():
                await client.spublish(KEYS.user_channel(user), raw_payload(user, data))
            await client.spublish(KEYS.user_channel(user), b"\xff\xfe")
            fresh = good_event(user, i="live")
            await publisher.publish(fresh)
            got = await collector.wait_for(len(good) + 1)
        finally:
            await collector.stop()
        assert got[-1] == fresh
        assert subscriber.stats.malformed == 3 * poison  # the replay, the resume, live
        assert subscriber.stats.gaps == 0
    finally:
        if decode:
            await client.aclose()
