"""sse_core on a real local Redis Cluster (3 primaries + 3 replicas): connect, publish, live
delivery over sharded pub/sub, replay across two slots, discovery and history."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from sse_core.batcher import LANES
from sse_core.cluster import ClusterBatcher, batcher_for
from sse_core.cluster_hub import ClusterHub, hub_for
from sse_core.codec import decode_fields
from sse_core.connection import connect, is_cluster_node
from sse_core.events import SSEEvent
from sse_core.frames import load_events
from sse_core.keys import DashtamChannelKeys, SSEChannelKeys
from sse_core.publisher import RedisSSEPublisher
from sse_core.registry import SSEEventType
from sse_core.subscriber import RedisSSESubscriber, StreamGap
from tests.support.redis_cluster import LocalCluster
from tests.support.redis_server import RedisServer
from tests.support.streams import Collector, eventually

pytestmark = pytest.mark.redis

KEYS = SSEChannelKeys()
TYPES = list(SSEEventType)


def event(user: UUID, n: int, kind: int = 0) -> SSEEvent:
    return SSEEvent(event_type=TYPES[kind % len(TYPES)], user_id=user, data={"n": n})


def users_on_every_primary(cluster: LocalCluster, per_node: int = 2) -> list[UUID]:
    """Users whose slots cover every primary (so tests cross nodes for real)."""
    wanted = {n.node_id: per_node for n in cluster.primaries()}
    owners = {}
    found: list[UUID] = []
    while any(wanted.values()):
        user = uuid.uuid4()
        slot = cluster.keyslot(KEYS.user_stream(user))
        owner = owners.get(slot) or cluster.owner_of(slot).node_id
        owners[slot] = owner
        if wanted[owner]:
            wanted[owner] -= 1
            found.append(user)
    return found


def test_connect_detects_a_cluster_node(
    redis_cluster: LocalCluster, redis_server: RedisServer
) -> None:
    assert is_cluster_node(redis_cluster.url)
    assert not is_cluster_node(redis_server.url)
    assert isinstance(connect(redis_cluster.url), RedisCluster)
    assert isinstance(connect(redis_server.url), Redis)
    # The explicit setting wins over detection (no probe is made).
    assert type(connect(redis_cluster.url, cluster="no")) is Redis
    assert isinstance(connect(redis_cluster.url, cluster="yes"), RedisCluster)


def test_connect_follows_sse_redis_cluster(
    redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSE_REDIS_CLUSTER", "no")
    assert type(connect(redis_cluster.url)) is Redis
    monkeypatch.setenv("SSE_REDIS_CLUSTER", "maybe")
    with pytest.raises(ValueError, match="auto"):
        connect(redis_cluster.url)


def test_an_unreachable_server_is_taken_for_a_standalone_one() -> None:
    from tests.support.redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    assert not is_cluster_node(url)
    assert type(connect(url)) is Redis


async def test_publish_appends_and_spublishes_in_the_users_slot(
    cluster_client: RedisCluster,
) -> None:
    user = uuid.uuid4()
    listener = cluster_client.pubsub()
    await listener.ssubscribe(KEYS.user_channel(user))
    first = await listener.get_sharded_message(timeout=2.0)
    assert first is not None
    assert first["type"] == "ssubscribe"
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    sent = event(user, 1)
    assert await publisher.publish(sent)
    message = None
    for _ in range(50):
        message = await listener.get_sharded_message(timeout=0.1)
        if message is not None:
            break
    await listener.aclose()
    assert message is not None
    assert message["type"] == "smessage"
    assert SSEEvent.model_validate_json(message["data"]) == sent
    rows = await cluster_client.xrange(KEYS.user_stream(user))
    assert [r[1][b"event_id"].decode() for r in rows] == [str(sent.event_id)]


async def test_publish_many_batches_per_node_and_keeps_each_streams_order(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    users = users_on_every_primary(redis_cluster)
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    events = [event(users[i % len(users)], i) for i in range(120)]
    await cluster_client.script_flush()  # the batch must reload the script on every primary
    assert await publisher.publish_many(events)
    assert await publisher.publish_many([event(u, 0) for u in users], broadcast=True)
    assert await publisher.publish_to_users(users, event(users[0], -1))
    for user in users:
        rows = await cluster_client.xrange(KEYS.user_stream(user))
        got = [UUID(r[1][b"event_id"].decode()) for r in rows]
        assert got == [e.event_id for e in events if e.user_id == user] + [got[-1]]
    assert await cluster_client.xlen(KEYS.broadcast_stream()) == len(users)
    assert publisher.stats.published == len(events) + 2 * len(users)


async def test_publish_without_retention_uses_shard_channels(cluster_client: RedisCluster) -> None:
    users = [uuid.uuid4() for _ in range(6)]
    received: list[Any] = []
    listener = cluster_client.pubsub()
    await listener.ssubscribe(*(KEYS.user_channel(u) for u in users))
    publisher = RedisSSEPublisher(cluster_client, raise_errors=True)
    assert await publisher.publish(event(users[0], 0))
    assert await publisher.publish_many([event(u, 1) for u in users])
    for _ in range(200):
        message = await listener.get_sharded_message(timeout=0.05)
        if message is not None and message["type"] == "smessage":
            received.append(message)
        if len(received) == 7:
            break
    await listener.aclose()
    assert len(received) == 7
    assert await cluster_client.exists(*(KEYS.user_stream(u) for u in users)) == 0


async def test_live_delivery_shares_one_pubsub_connection_per_node(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    users = users_on_every_primary(redis_cluster)
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    subscribers = [RedisSSESubscriber(cluster_client, enable_retention=True) for _ in users]
    collectors = [
        Collector(s.stream(u).__aiter__()) for s, u in zip(subscribers, users, strict=True)
    ]
    hub = hub_for(cluster_client)
    assert isinstance(hub, ClusterHub)
    await eventually(lambda: hub.status().subscriptions == len(users))
    sent = [event(u, i) for i, u in enumerate(users)]
    for e in sent:
        assert await publisher.publish(e)
    shared = event(users[0], 99)
    assert await publisher.broadcast(shared)
    for collector, e in zip(collectors, sent, strict=True):
        assert await collector.wait_for(2) == [e, shared]
    # One connection per node we need (the user slots cover all three primaries).
    assert len(hub.nodes) == 3
    for node in redis_cluster.primaries():
        with redis_cluster.client(node.port) as c:
            pubsub_clients = c.execute_command("CLIENT", "LIST", "TYPE", "pubsub")
        assert len(pubsub_clients.strip().splitlines()) == 1, pubsub_clients
    for collector in collectors:
        await collector.stop()
    await eventually(lambda: hub.status().subscriptions == 0)
    assert hub.nodes == []


async def test_category_filter_and_malformed_messages_on_the_cluster(
    cluster_client: RedisCluster,
) -> None:
    user = uuid.uuid4()
    subscriber = RedisSSESubscriber(cluster_client, enable_retention=True)
    wanted = event(user, 1, kind=0)
    category = wanted.category.value
    other = next(
        e
        for e in (event(user, 2, kind=k) for k in range(len(TYPES)))
        if e.category != wanted.category
    )
    collector = Collector(subscriber.stream(user, [category]).__aiter__())
    await eventually(lambda: hub_for(cluster_client).status().subscriptions == 1)
    await cluster_client.spublish(KEYS.user_channel(user), b"<not json>")
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    assert await publisher.publish(other)
    assert await publisher.publish(wanted)
    assert await collector.wait_for(1) == [wanted]
    await eventually(lambda: subscriber.stats.malformed == 1)
    await collector.stop()


async def test_resume_across_two_slots_is_gapless_under_concurrent_publishing(
    cluster_client: RedisCluster,
) -> None:
    user = uuid.uuid4()
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    assert KEYS.user_stream(user) != KEYS.broadcast_stream()
    before = [event(user, i) for i in range(5)]
    for e in before:
        assert await publisher.publish(e)
    anchor = before[1]
    published: list[SSEEvent] = []
    broadcasts: set[UUID] = set()

    async def produce() -> None:
        for i in range(150):
            e = event(user, 100 + i)
            if i % 3 == 0:
                broadcasts.add(e.event_id)
            ok = await (publisher.broadcast(e) if i % 3 == 0 else publisher.publish(e))
            assert ok
            published.append(e)
            if i % 10 == 0:
                await asyncio.sleep(0)

    producer = asyncio.create_task(produce())
    subscriber = RedisSSESubscriber(cluster_client, enable_retention=True)
    collector = Collector(subscriber.stream(user, last_event_id=anchor.event_id).__aiter__())
    await producer
    expected = before[2:] + published
    items = await collector.wait_for(len(expected), timeout=20)
    await asyncio.sleep(0.2)  # nothing more may arrive
    await collector.stop()
    assert not any(isinstance(i, StreamGap) for i in collector.items)
    assert sorted(i.event_id for i in collector.items) == sorted(e.event_id for e in expected)
    assert len(collector.items) == len(items)
    # Each stream's events arrive in that stream's publication order.
    for from_broadcast in (False, True):
        got = [i.event_id for i in collector.items if (i.event_id in broadcasts) == from_broadcast]
        want = [e.event_id for e in expected if (e.event_id in broadcasts) == from_broadcast]
        assert got == want


async def test_replay_and_completeness_across_two_slots(cluster_client: RedisCluster) -> None:
    user = uuid.uuid4()
    publisher = RedisSSEPublisher(
        cluster_client, enable_retention=True, retention_max_len=10, raise_errors=True
    )
    first = event(user, 0)
    assert await publisher.publish(first)
    rest = []
    for i in range(1, 6):
        e = event(user, i)
        assert await (publisher.broadcast(e) if i % 2 else publisher.publish(e))
        rest.append(e)
    subscriber = RedisSSESubscriber(cluster_client, enable_retention=True)
    replay = await subscriber.replay(user, first.event_id)
    assert replay.complete
    assert replay.events == rest
    assert await subscriber.get_missed_events(user, rest[0].event_id) == rest[1:]
    # Trim the broadcast stream far past the anchor: the replay says it is incomplete.
    for i in range(200):
        assert await publisher.broadcast(event(user, 1000 + i))
    replay = await subscriber.replay(user, first.event_id)
    assert not replay.complete


async def test_a_slow_consumer_recovers_from_retention_on_the_cluster(
    cluster_client: RedisCluster,
) -> None:
    user = uuid.uuid4()
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    subscriber = RedisSSESubscriber(cluster_client, enable_retention=True, queue_size=5)
    stream = subscriber.stream(user).__aiter__()
    first = event(user, 0)
    pending = asyncio.ensure_future(stream.__anext__())
    await eventually(lambda: hub_for(cluster_client).status().subscriptions == 1)
    assert await publisher.publish(first)
    assert await pending == first
    burst = [event(user, i) for i in range(1, 60)]
    assert await publisher.publish_many(burst)
    await eventually(lambda: subscriber.stats.dropped > 0)
    got = [await asyncio.wait_for(stream.__anext__(), 5) for _ in burst]
    await stream.aclose()
    assert got == burst
    assert subscriber.stats.recoveries == 1


async def test_a_slow_consumer_without_retention_is_told_of_the_gap_on_the_cluster(
    cluster_client: RedisCluster,
) -> None:
    user = uuid.uuid4()
    publisher = RedisSSEPublisher(cluster_client, raise_errors=True)
    subscriber = RedisSSESubscriber(cluster_client, queue_size=5)
    stream = subscriber.stream(user).__aiter__()
    first = event(user, 0)
    pending = asyncio.ensure_future(stream.__anext__())
    await eventually(lambda: hub_for(cluster_client).status().subscriptions == 1)
    assert await publisher.publish(first)
    assert await pending == first
    burst = [event(user, i) for i in range(1, 60)]
    assert await publisher.publish_many(burst)
    await eventually(lambda: subscriber.stats.dropped > 0)
    before: list[SSEEvent] = []
    while not isinstance(item := await asyncio.wait_for(stream.__anext__(), 5), StreamGap):
        before.append(item)
    assert item == StreamGap("lagged", before[-1].event_id if before else first.event_id)
    after = event(user, 1000)
    assert await publisher.publish(after)
    later: list[SSEEvent] = []
    while (got := await asyncio.wait_for(stream.__anext__(), 5)) != after:
        later.append(got)  # burst messages still in flight when the gap was signalled
    await stream.aclose()
    # What was delivered is the burst in order, with a hole (the gap), then live again.
    delivered = [e.event_id for e in before + later]
    assert delivered == [e.event_id for e in burst if e.event_id in set(delivered)]
    assert len(delivered) < len(burst)
    assert subscriber.stats.lagged == 1


async def test_discovery_and_history_scan_every_primary(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    users = users_on_every_primary(redis_cluster, per_node=3)
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    sent = [event(u, i) for i, u in enumerate(users)]
    assert await publisher.publish_many(sent)
    shared = event(users[0], 1000)
    assert await publisher.broadcast(shared)
    subscriber = RedisSSESubscriber(cluster_client, enable_retention=True)
    assert await subscriber.retention.users() == sorted(users, key=str)
    frame = await load_events(cluster_client)
    assert list(frame["event_id"]) == [str(e.event_id) for e in [*sent, shared]]
    assert frame.attrs["complete"]
    one = await load_events(cluster_client, users[4])
    assert list(one["event_id"]) == [str(sent[4].event_id), str(shared.event_id)]


async def test_a_decoding_cluster_client_works_too(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    client = await RedisCluster.from_url(redis_cluster.url, decode_responses=True).initialize()
    try:
        user = uuid.uuid4()
        publisher = RedisSSEPublisher(client, enable_retention=True, raise_errors=True)
        first, missed = event(user, 0), event(user, 1)
        assert await publisher.publish(first)
        assert await publisher.broadcast(missed)
        subscriber = RedisSSESubscriber(client, enable_retention=True)
        collector = Collector(subscriber.stream(user, last_event_id=first.event_id).__aiter__())
        assert await collector.wait_for(1) == [missed]
        live = [event(user, 2), event(user, 3)]
        assert await publisher.publish_many(live)
        assert await collector.wait_for(3) == [missed, *live]
        await collector.stop()
        assert (await subscriber.replay(user, first.event_id)).events == [missed, *live]
        assert await subscriber.retention.users() == [user]
    finally:
        await client.aclose()


async def test_concurrent_publishes_coalesce_into_per_node_batches(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    users = users_on_every_primary(redis_cluster, per_node=4)
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    batcher = batcher_for(cluster_client)
    assert isinstance(batcher, ClusterBatcher)
    await publisher.publish(event(users[0], -1))  # loads the script
    before = batcher.round_trips
    calls = [publisher.publish(event(u, i)) for i in range(20) for u in users]
    assert all(await asyncio.gather(*calls))
    # The first call on each lane leaves alone, the rest queue and leave together (one
    # pipeline per node each time).
    assert batcher.round_trips - before <= 2 * LANES
    for user in users:  # each user's events retained in call order
        rows = await cluster_client.xrange(KEYS.user_stream(user))
        ns = [decode_fields(fields).data["n"] for _, fields in rows]
        assert [n for n in ns if n >= 0] == list(range(20))


def test_cluster_support_is_for_the_ssewatch_layout(cluster_client: RedisCluster) -> None:
    with pytest.raises(ValueError, match="'ssewatch' key layout"):
        RedisSSEPublisher(cluster_client, keys=DashtamChannelKeys())
    with pytest.raises(ValueError, match="'ssewatch' key layout"):
        RedisSSESubscriber(cluster_client, keys=DashtamChannelKeys())
