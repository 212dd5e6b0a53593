"""Topology changes under live traffic on a real local Redis Cluster: a primary failover and
slot migrations lose no retained event and duplicate none; subscribers follow by themselves."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from uuid import UUID

import pytest
from redis.asyncio.cluster import RedisCluster

from sse_core import cluster_hub
from sse_core.cluster_hub import ClusterHub, hub_for
from sse_core.events import SSEEvent
from sse_core.keys import SSEChannelKeys
from sse_core.publisher import RedisSSEPublisher
from sse_core.subscriber import RedisSSESubscriber, StreamGap
from tests.support.redis_cluster import LocalCluster
from tests.support.streams import Collector, eventually
from tests.test_cluster_core import event, users_on_every_primary

pytestmark = pytest.mark.redis

KEYS = SSEChannelKeys()


async def retained_ids(client: RedisCluster, user: UUID) -> list[UUID]:
    """Every event the user's stream and the broadcast stream retain, in no particular order."""
    ids: list[UUID] = []
    for key in (KEYS.user_stream(user), KEYS.broadcast_stream()):
        rows = await client.xrange(key)
        ids += [UUID(fields[b"event_id"].decode()) for _, fields in rows]
    return ids


async def run_with_traffic(
    cluster: LocalCluster,
    client: RedisCluster,
    users: list[UUID],
    fault: Callable[[], Awaitable[None]],
) -> tuple[dict[UUID, Collector], RedisSSEPublisher, set[UUID]]:
    """Subscribers for ``users``, traffic to each of them and broadcasts before, during and
    after ``fault``; returns once every retained event reached its subscriber (or 30 s)."""
    publisher = RedisSSEPublisher(client, enable_retention=True, retention_max_len=100_000)
    # Everything these subscribers must receive is retained after this point.
    warm = [event(u, -1) for u in users]
    assert await publisher.publish_many(warm)
    collectors = {
        u: Collector(
            RedisSSESubscriber(client, enable_retention=True)
            .stream(u, last_event_id=w.event_id)
            .__aiter__()
        )
        for u, w in zip(users, warm, strict=True)
    }
    hub = hub_for(client)
    await eventually(lambda: hub.status().subscriptions == len(users))
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            for i, user in enumerate(users):
                e = event(user, n)
                await (publisher.broadcast(e) if (n + i) % 7 == 0 else publisher.publish(e))
                n += 1
            await asyncio.sleep(0.01)

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.5)
    await fault()
    await asyncio.sleep(1.0)
    stop.set()
    await producer
    # Everything retained after the warm-up event is delivered: wait for it, then compare.
    for user, collector in collectors.items():
        expected = set(await retained_ids(client, user)) - {e.event_id for e in warm}

        def arrived(c: Collector = collector, want: set[UUID] = expected) -> bool:
            return want <= {i.event_id for i in c.items if isinstance(i, SSEEvent)}

        with contextlib.suppress(AssertionError):
            await eventually(arrived, within=30)
    return collectors, publisher, {e.event_id for e in warm}


async def assert_exactly_retained(
    client: RedisCluster,
    collectors: dict[UUID, Collector],
    warm: set[UUID],
    *,
    exact: bool = True,
) -> None:
    """Each subscriber got every retained event once (and, if ``exact``, nothing else)."""
    for user, collector in collectors.items():
        got = [i.event_id for i in collector.items if isinstance(i, SSEEvent)]
        expected = set(await retained_ids(client, user)) - warm
        assert len(got) == len(set(got)), "an event was delivered twice"
        missing = expected - set(got)
        assert not missing, f"{len(missing)} retained events never arrived"
        if exact:
            assert set(got) == expected, "delivered events that retention does not hold"
        assert not [i for i in collector.items if isinstance(i, StreamGap)]


async def stop_all(collectors: dict[UUID, Collector]) -> None:
    for collector in collectors.values():
        await collector.stop()


async def test_primary_failover_under_live_traffic(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    users = users_on_every_primary(redis_cluster, per_node=1)
    # Fail over the primary serving the broadcast slot (every subscriber reads from it).
    victim = redis_cluster.owner_of(redis_cluster.keyslot(KEYS.broadcast_stream()))

    async def fault() -> None:
        await asyncio.to_thread(redis_cluster.failover, victim)

    collectors, publisher, warm = await run_with_traffic(
        redis_cluster, cluster_client, users, fault
    )
    try:
        owner = redis_cluster.owner_of(redis_cluster.keyslot(KEYS.broadcast_stream()))
        assert owner != victim
        assert publisher.stats.published > 100
        assert publisher.stats.failed == 0  # redirected calls run as EVAL on the new primary
        await assert_exactly_retained(cluster_client, collectors, warm)
        # The broadcast is read from the new primary, not from the demoted one (a stale slot
        # map right after the failover still names it; the hub waits until the map is current).
        hub = hub_for(cluster_client)
        assert isinstance(hub, ClusterHub)
        assert hub.carrier(KEYS.broadcast_channel()) == f"127.0.0.1:{owner.port}"
        # After the failover, new events still arrive (subscribers follow by themselves).
        fresh = [event(u, 10**6) for u in users]
        assert await publisher.publish_many(fresh)
        for user, e in zip(users, fresh, strict=True):
            c = collectors[user]
            await eventually(lambda c=c, e=e: e in c.items)
    finally:
        await stop_all(collectors)


async def test_a_crashed_primary_is_replaced_and_subscribers_follow(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    """A primary killed under traffic: its replica takes over after the node timeout, the hub
    moves by itself, and every event the new primary retains is delivered, once. (Redis
    replicates asynchronously: a write acknowledged just before the crash may be missing from
    the new primary; a subscriber may have seen it live, so delivered may exceed retained.)"""
    users = users_on_every_primary(redis_cluster, per_node=1)
    victim = redis_cluster.owner_of(redis_cluster.keyslot(KEYS.broadcast_stream()))
    server = next(s for s in redis_cluster.servers if s.port == victim.port)

    slot = redis_cluster.keyslot(KEYS.broadcast_stream())

    def promoted() -> bool:
        try:
            return redis_cluster.owner_of(slot).port != victim.port
        except (LookupError, KeyError):
            return False  # the cluster is still deciding

    async def fault() -> None:
        server.stop()  # SIGKILL
        await asyncio.to_thread(redis_cluster.wait_for, promoted, "promote a replica")

    try:
        collectors, publisher, warm = await run_with_traffic(
            redis_cluster, cluster_client, users, fault
        )
    finally:
        if server.process is None:
            server.start()  # rejoins as a replica of the promoted node
        await asyncio.to_thread(redis_cluster.wait_ready)
    try:
        await assert_exactly_retained(cluster_client, collectors, warm, exact=False)
        fresh = [event(u, 10**6) for u in users]
        assert await publisher.publish_many(fresh)
        for user, e in zip(users, fresh, strict=True):
            c = collectors[user]
            await eventually(lambda c=c, e=e: e in c.items)
    finally:
        await stop_all(collectors)


@pytest.mark.parametrize("which", ["user", "broadcast"])
async def test_slot_migration_under_live_traffic(
    redis_cluster: LocalCluster, cluster_client: RedisCluster, which: str
) -> None:
    users = users_on_every_primary(redis_cluster, per_node=1)
    key = KEYS.user_stream(users[0]) if which == "user" else KEYS.broadcast_stream()
    slot = redis_cluster.keyslot(key)
    source = redis_cluster.owner_of(slot)
    target = next(n for n in redis_cluster.primaries() if n.node_id != source.node_id)
    hub = hub_for(cluster_client)
    assert isinstance(hub, ClusterHub)

    async def fault() -> None:
        await asyncio.to_thread(redis_cluster.migrate_slot, slot, target, pause=0.05)

    collectors, publisher, warm = await run_with_traffic(
        redis_cluster, cluster_client, users, fault
    )
    try:
        assert redis_cluster.owner_of(slot).node_id == target.node_id
        await assert_exactly_retained(cluster_client, collectors, warm)
        # The hub moved the channel to the slot's new owner by itself.
        channel = KEYS.user_channel(users[0]) if which == "user" else KEYS.broadcast_channel()
        await eventually(lambda: hub.carrier(channel) == f"127.0.0.1:{target.port}")
        assert hub.reconnects >= 1
        fresh = [event(u, 10**6) for u in users]
        assert await publisher.publish_many(fresh)
        for user, e in zip(users, fresh, strict=True):
            c = collectors[user]
            await eventually(lambda c=c, e=e: e in c.items)
    finally:
        await stop_all(collectors)


async def test_a_silent_connection_is_replaced_by_the_liveness_probe(
    cluster_client: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node connection that stops delivering while healthy on the TCP level (here its shard
    subscriptions are dropped behind the hub's back) is found by the probe and replaced."""
    monkeypatch.setattr(cluster_hub, "DEFAULT_PROBE_SECONDS", 0.3)
    user = uuid.uuid4()
    hub = hub_for(cluster_client)
    assert isinstance(hub, ClusterHub)
    subscriber = RedisSSESubscriber(cluster_client, enable_retention=True)
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    collector = Collector(subscriber.stream(user).__aiter__())
    await eventually(lambda: hub.status().subscriptions == 1)
    # Idle but healthy connections answer their probes: nothing is replaced.
    await eventually(lambda: hub.probes >= 4)
    assert hub.reconnects == 0
    channel = KEYS.user_channel(user)
    node = hub.carrier(channel)
    assert node is not None
    # Unsubscribe everything on that connection server-side, without telling the hub: the
    # connection stays healthy on the TCP level but no longer receives anything.
    link = hub._links[node]
    link.leaving.update([*link.channels, link.probe_channel])
    await link.connection.send_command("SUNSUBSCRIBE")
    await eventually(lambda: hub.reconnects >= 1, within=10)
    e = event(user, 1)
    assert await publisher.publish(e)
    assert await collector.wait_for(1) == [e]
    assert hub.probes >= 1
    await collector.stop()
