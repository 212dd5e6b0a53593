"""Concurrent publishes coalesce into pipelined round trips (real redis-server).

What users rely on: a burst through one default client loses nothing and opens few connections;
every call keeps its own outcome; one user's events keep their call order; cancelling a caller
never disturbs anybody else's events.
"""

from __future__ import annotations

import asyncio
import random
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis

from sse_core import RedisSSEPublisher, RedisSSESubscriber, SSEChannelKeys, SSEEvent
from sse_core.batcher import LANES, Call, RedisBatcher
from sse_core.codec import decode_fields
from sse_core.publisher import SSEPublishError
from tests.support.redis_server import RedisServer
from tests.support.streams import Collector, wait_subscribed

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


def _event(user: UUID, i: int) -> SSEEvent:
    return SSEEvent(event_type="ai.response.chunk", user_id=user, data={"i": i})


async def _retained(redis: Redis, user: UUID) -> list[int]:
    """The ``i`` of every event retained for ``user``, in stream order."""
    rows = await redis.xrange(KEYS.user_stream(user))
    return [decode_fields(fields).data["i"] for _, fields in rows]


async def _publisher_connections(admin: Redis) -> int:
    """Connections of clients that did not name themselves (the default client under test)."""
    return sum(1 for c in await admin.client_list() if not c.get("name"))


async def test_a_burst_through_a_default_client_loses_nothing(redis_server: RedisServer) -> None:
    host, port = "127.0.0.1", redis_server.port
    admin = Redis(host=host, port=port, client_name="admin", decode_responses=True)
    reader = Redis(host=host, port=port, client_name="reader")
    app = Redis(host=host, port=port)  # redis-py's defaults: a pool capped at 100 connections
    await admin.flushall()
    users = [uuid4() for _ in range(50)]
    per_user = 100  # 5,000 publishes
    subscriber = RedisSSESubscriber(reader, enable_retention=True)
    collectors = {u: Collector(subscriber.subscribe(u)) for u in users}
    for u in users:
        await wait_subscribed(admin, KEYS.user_channel(u))
    publisher = RedisSSEPublisher(app, enable_retention=True)
    # Calls interleave users at random; each user's calls are made in i order.
    order = [u for u in users for _ in range(per_user)]
    random.Random(12).shuffle(order)
    counters = dict.fromkeys(users, 0)
    calls = []
    for u in order:
        calls.append(publisher.publish(_event(u, counters[u])))
        counters[u] += 1
    results = await asyncio.gather(*calls)
    assert results.count(True) == len(results) == 5000
    assert publisher.stats.published == 5000
    assert publisher.stats.failed == 0
    assert await _publisher_connections(admin) <= LANES + 1
    for u in users:
        assert await _retained(reader, u) == list(range(per_user))
        got = await collectors[u].wait_for(per_user)
        assert [e.data["i"] for e in got] == list(range(per_user))
    for collector in collectors.values():
        await collector.stop()
    for client in (admin, reader, app):
        await client.aclose()


async def test_a_lone_publish_is_one_round_trip_and_concurrent_ones_share_them(
    redis_client: Redis,
) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    batcher = RedisBatcher.for_client(redis_client)
    user = uuid4()
    await publisher.publish(_event(user, 0))  # loads the script
    before = batcher.round_trips
    assert await publisher.publish(_event(user, 1))
    assert batcher.round_trips - before == 1
    before = batcher.round_trips
    users = [uuid4() for _ in range(40)]
    assert all(await asyncio.gather(*(publisher.publish(_event(u, 0)) for u in users * 10)))
    # The first call on each lane leaves alone, the rest queue behind it and leave together.
    assert batcher.round_trips - before <= 2 * LANES
    assert [await _retained(redis_client, u) for u in users] == [[0] * 10] * len(users)


async def test_publishers_sharing_a_client_keep_each_users_call_order(redis: Redis) -> None:
    retained = RedisSSEPublisher(redis, enable_retention=True)
    other = RedisSSEPublisher(redis, enable_retention=True, retention_max_len=500)
    user = uuid4()
    calls = [(retained if i % 3 else other).publish(_event(user, i)) for i in range(300)]
    assert all(await asyncio.gather(*calls))
    assert await _retained(redis, user) == list(range(300))


async def test_one_bad_call_fails_alone(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    strict = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    poisoned = uuid4()
    await redis_client.set(KEYS.user_stream(poisoned), "not a stream")  # every XADD fails
    good = [uuid4() for _ in range(30)]
    calls = [publisher.publish(_event(u, 0)) for u in good[:15]]
    calls.append(publisher.publish(_event(poisoned, 0)))
    calls += [publisher.publish(_event(u, 0)) for u in good[15:]]
    results = await asyncio.gather(*calls)
    assert results == [True] * 15 + [False] + [True] * 15
    assert publisher.stats.failed == 1
    assert publisher.stats.published == 30
    assert [await _retained(redis_client, u) for u in good] == [[0]] * len(good)
    many = [_event(u, 1) for u in good[:5]] + [_event(poisoned, 1)]
    with pytest.raises(SSEPublishError, match="1 event"):
        await strict.publish_many(many)
    assert [await _retained(redis_client, u) for u in good[:5]] == [[0, 1]] * 5
    assert strict.stats.failed == 1
    assert strict.stats.published == 5


async def _busy_lane(publisher: RedisSSEPublisher, user: UUID, count: int) -> asyncio.Task[bool]:
    """A big publish for ``user`` in flight: calls for that user made meanwhile queue behind it."""
    busy = asyncio.create_task(publisher.publish_many([_event(user, i) for i in range(count)]))
    await asyncio.sleep(0)
    return busy


async def test_a_lost_connection_fails_exactly_the_calls_without_a_reply(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    batcher = RedisBatcher.for_client(redis)
    user = uuid4()
    busy = await _busy_lane(publisher, user, 100)
    before = asyncio.create_task(publisher.publish(_event(user, 100)))
    await asyncio.sleep(0)
    # Another caller's command on the same lane, in the same pipeline: the server answers it,
    # then closes the connection without running what follows.
    quit_call = batcher.submit(Call(None, (KEYS.user_stream(user),), ("QUIT",)))
    after = [asyncio.create_task(publisher.publish(_event(user, 101 + i))) for i in range(20)]
    assert await busy
    assert await before is True
    assert await quit_call in (b"OK", "OK")
    assert await asyncio.gather(*after) == [False] * 20
    assert (publisher.stats.failed, publisher.stats.published) == (20, 101)
    assert await _retained(redis, user) == list(range(101))
    assert await publisher.publish(_event(user, 121))  # a new connection from the pool
    assert (await _retained(redis, user))[-1] == 121


async def test_noscript_resends_only_the_calls_that_did_not_run(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    batcher = RedisBatcher.for_client(redis_client)
    user = uuid4()
    busy = await _busy_lane(publisher, user, 50)  # also loads the script
    first = asyncio.create_task(publisher.publish(_event(user, 50)))
    await asyncio.sleep(0)
    # Another client's SCRIPT FLUSH lands between two of our calls (emulated in-band).
    flush = batcher.submit(Call(None, (KEYS.user_stream(user),), ("SCRIPT", "FLUSH")))
    rest = asyncio.gather(*(publisher.publish(_event(user, 51 + i)) for i in range(10)))
    assert await busy
    assert await first
    assert await flush
    assert await rest == [True] * 10
    # Before the fix (publish_many's retry): the call that ran is sent again, appended twice.
    assert await _retained(redis_client, user) == list(range(61))
    assert publisher.stats.failed == 0


async def test_cancelled_callers_do_not_disturb_a_batch(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    user = uuid4()
    busy = await _busy_lane(publisher, user, 400)
    queued = [asyncio.create_task(publisher.publish(_event(user, 400 + i))) for i in range(100)]
    await asyncio.sleep(0)
    cancelled = set(random.Random(3).sample(range(100), 40))
    for i in cancelled:
        queued[i].cancel()
    assert await busy
    results = await asyncio.gather(*queued, return_exceptions=True)
    for i, result in enumerate(results):
        assert isinstance(result, asyncio.CancelledError) if i in cancelled else result is True
    kept = [400 + i for i in range(100) if i not in cancelled]
    # Not yet sent when cancelled, so not sent; everything else in call order, once.
    assert await _retained(redis, user) == list(range(400)) + kept
    assert await publisher.publish(_event(user, 500))
    assert (await _retained(redis, user))[-1] == 500


async def test_a_caller_cancelled_mid_flight_leaves_the_batch_whole(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    user = uuid4()
    await publisher.publish(_event(user, 0))
    first = asyncio.create_task(publisher.publish_many([_event(user, i) for i in range(1, 100)]))
    await asyncio.sleep(0)
    # 500 calls queue behind the first trip, then leave together (a trip of several ms).
    in_flight = [asyncio.create_task(publisher.publish(_event(user, 100 + i))) for i in range(500)]
    await first
    await asyncio.sleep(0)
    for task in in_flight[::2]:
        task.cancel()
    await asyncio.gather(*in_flight, return_exceptions=True)
    assert all(t.cancelled() for t in in_flight[::2])
    assert all(t.result() for t in in_flight[1::2])
    # A cancelled caller cannot recall its event once sent: all 500 are retained, whole.
    assert await _retained(redis, user) == list(range(600))
    assert publisher.stats.failed == 0
