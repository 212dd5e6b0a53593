"""sse_core on a Redis Cluster next to one standalone server, measured in the same run.

Both back ends run on this machine: one ``redis-server`` and a local cluster of 3 primaries + 3
replicas (Debian's redis-server, ``tests/support/redis_cluster.py``). What is measured, for each
back end with the same code and the same pre-built ~300-byte events:

- **publish**: events/s of awaited ``publish`` (one Lua call each) to 64 users, and of
  ``publish_many`` in batches of 100 (one pipeline per node on the cluster);
- **delivery**: 64 ``RedisSSESubscriber.stream`` consumers (one per user, all sharing the
  process's hub: one connection, or one per node) while ``publish_many`` feeds them; events/s
  from the first publish until every consumer has every event;
- **replay**: ms for ``replay`` of the last 1,000 of 10,000 retained events of one user (plus
  the broadcast stream, read on its own node on the cluster).

The cluster's figure is printed as a ratio to the standalone one; each ratio is the median of
per-repeat ratios (the two back ends measured back to back, order alternating). On one 2-core
machine a cluster cannot be faster (6 servers share 2 cores): the ratios show the client-side
cost of sharding, not the capacity a real cluster adds.

    python3 -m bench.cluster [--events 3000] [--repeats 5] [--budget 240]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bench._harness import Budget, bench_server, header, median, sample_event, spread
from sse_core.connection import RedisClient
from sse_core.events import SSEEvent
from sse_core.publisher import RedisSSEPublisher
from sse_core.subscriber import RedisSSESubscriber
from tests.support.redis_cluster import LocalCluster

USERS = 64
RETAINED = 10_000
MISSED = 1_000

Measure = Callable[[RedisClient, int], Awaitable[float]]


def events_for(users: list[UUID], count: int) -> list[SSEEvent]:
    return [sample_event(i, user_id=users[i % len(users)]) for i in range(count)]


def publisher(client: RedisClient) -> RedisSSEPublisher:
    return RedisSSEPublisher(client, enable_retention=True, retention_max_len=RETAINED * 2)


async def publish_single(client: RedisClient, count: int) -> float:
    events = events_for([uuid.uuid4() for _ in range(USERS)], count)
    pub = publisher(client)
    await pub.publish(events[0])  # connect, load the script
    started = time.perf_counter()
    for event in events:
        await pub.publish(event)
    return count / (time.perf_counter() - started)


async def publish_batched(client: RedisClient, count: int) -> float:
    events = events_for([uuid.uuid4() for _ in range(USERS)], count * 10)
    pub = publisher(client)
    await pub.publish_many(events[:100])
    started = time.perf_counter()
    for start in range(0, len(events), 100):
        await pub.publish_many(events[start : start + 100])
    return len(events) / (time.perf_counter() - started)


async def delivery(client: RedisClient, count: int) -> float:
    users = [uuid.uuid4() for _ in range(USERS)]
    events = events_for(users, count * 4)
    per_user = len(events) // USERS
    ready = {u: asyncio.Event() for u in users}
    done = asyncio.Event()
    remaining = USERS

    async def consume(user: UUID) -> None:
        nonlocal remaining
        got = 0
        async for event in RedisSSESubscriber(client, enable_retention=True).stream(user):
            if "marker" in event.data:
                ready[user].set()
                continue
            got += 1
            if got == per_user:
                break
        remaining -= 1
        if remaining == 0:
            done.set()

    consumers = [asyncio.create_task(consume(u)) for u in users]
    pub = publisher(client)
    # Live = a marker published after subscribing came through (repeated until it does).
    while waiting := [u for u in users if not ready[u].is_set()]:
        await pub.publish_many(
            [sample_event(0, user_id=u).model_copy(update={"data": {"marker": 1}}) for u in waiting]
        )
        await asyncio.wait([asyncio.create_task(ready[u].wait()) for u in waiting], timeout=0.2)
    started = time.perf_counter()
    for start in range(0, len(events), 100):
        await pub.publish_many(events[start : start + 100])
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    await asyncio.gather(*consumers)
    return len(events) / elapsed


async def replay_ms(client: RedisClient, _: int) -> float:
    user = uuid.uuid4()
    events = [sample_event(i, user_id=user) for i in range(RETAINED)]
    pub = publisher(client)
    for start in range(0, len(events), 1000):
        await pub.publish_many(events[start : start + 1000])
    subscriber = RedisSSESubscriber(client, enable_retention=True)
    anchor = events[-MISSED - 1].event_id
    await subscriber.replay(user, anchor)  # warm
    times = []
    for _ in range(5):
        started = time.perf_counter()
        replay = await subscriber.replay(user, anchor)
        times.append((time.perf_counter() - started) * 1000)
        if len(replay.events) != MISSED or not replay.complete:
            raise RuntimeError(f"replay returned {len(replay.events)} events")
    return median(times)


async def flush(client: RedisClient) -> None:
    if isinstance(client, RedisCluster):
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        await client.flushall()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=240.0, help="seconds, whole script")
    args = parser.parse_args()
    budget = Budget(args.budget)
    figures: list[tuple[str, str, Measure, bool]] = [
        ("publish (awaited, 64 users)", "events/s", publish_single, True),
        ("publish_many x100 (64 users)", "events/s", publish_batched, True),
        ("delivery to 64 subscribers", "events/s", delivery, True),
        (f"replay last {MISSED:,} of {RETAINED:,}", "ms", replay_ms, False),
    ]
    results: dict[str, dict[str, list[float]]] = {
        name: {"standalone": [], "cluster": [], "ratio": []} for name, *_ in figures
    }
    cluster = LocalCluster().start()
    try:
        with bench_server() as server:
            header("sse_core on a Redis Cluster (3+3, local) vs one redis-server", server)
            print(f"cluster nodes on ports {cluster.ports}; {args.events:,} events per repeat")
            standalone: RedisClient = Redis.from_url(server.url)
            clustered: RedisClient = await RedisCluster.from_url(cluster.url).initialize()
            try:
                for repeat in range(args.repeats):
                    if repeat and budget.spent():
                        print(f"(budget spent after {repeat} repeats)")
                        break
                    for name, _, measure, _higher in figures:
                        order: list[tuple[str, RedisClient]] = [
                            ("standalone", standalone),
                            ("cluster", clustered),
                        ]
                        if repeat % 2:
                            order.reverse()
                        for label, client in order:
                            await flush(client)
                            results[name][label].append(await measure(client, args.events))
                        r = results[name]
                        r["ratio"].append(r["cluster"][-1] / r["standalone"][-1])
            finally:
                await standalone.aclose()
                await clustered.aclose()
    finally:
        cluster.cleanup()
    columns = f"{'unit':>8} {'standalone':>12} {'cluster':>12} {'cluster/standalone':>19}"
    print(f"\n{'figure':<32} {columns}")
    for name, unit, _, _higher in figures:
        r = results[name]
        print(
            f"{name:<32} {unit:>8} {median(r['standalone']):>12,.1f} {median(r['cluster']):>12,.1f}"
            f" {median(r['ratio']):>18.2f}x  {spread(r['cluster'])}"
        )
    print("(medians over repeats; the ratio is the median of per-repeat paired ratios)")


if __name__ == "__main__":
    asyncio.run(main())
