"""The publisher against a real redis-server: what one publish writes, how concurrent publishes
are batched, and how failures stay with the call that caused them.

What users rely on: a publish appends to the user's retention stream and publishes on its channel
in one step; a burst through one default client loses nothing and opens few connections; every
call keeps its own outcome; one user's events keep their call order; cancelling a caller never
disturbs anybody else's events; an event that cannot be stored fails alone, is counted, and
never sinks a batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sse_core import (
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSEEvent,
    SSEPublishError,
    uuid7,
)
from sse_core.batcher import LANES, Call, RedisBatcher
from sse_core.codec import decode_fields
from tests.support.redis_server import RedisServer, free_port
from tests.support.streams import (
    Collector,
    new_event,
    wait_subscribed,
)

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


def _now_ms() -> int:
    return uuid7().int >> 80


# -- one publish: appended and published atomically, bounded ------------------------------


async def test_publish_appends_and_publishes_atomically_with_bounds(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(
        redis_client, enable_retention=True, retention_max_len=1000, retention_ttl_seconds=60
    )
    user = uuid4()
    event = new_event(user, "portfolio.balance.updated", balance=10.5)
    async with redis_client.pubsub() as pubsub:
        await pubsub.subscribe(KEYS.user_channel(user))
        await pubsub.get_message(timeout=1)  # subscribe confirmation
        assert await publisher.publish(event)
        message = await pubsub.get_message(timeout=2)
    assert message is not None
    assert SSEEvent.model_validate_json(message["data"]) == event
    [(stream_id, fields)] = await redis_client.xrange(KEYS.user_stream(user))
    text = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    assert set(text) == {"event_id", "event_type", "data", "occurred_at", "user_id"}
    stream_ms = int(
        (stream_id.decode() if isinstance(stream_id, bytes) else stream_id).split("-")[0]
    )
    assert stream_ms == event.time_ms  # the stream id carries the event's time: seekable
    ttl = await redis_client.pttl(KEYS.user_stream(user))
    assert 0 < ttl <= 60_000


async def test_publish_into_an_emptied_stream_whose_last_id_is_ahead(redis_client: Redis) -> None:
    """Regression (second read of the core): the clock-skew fallback assumed the stream had a
    top entry."""
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    user = uuid4()
    ahead = SSEEvent(
        event_id=uuid7(now_ms=_now_ms() + 60_000), event_type="ai.response.chunk", user_id=user
    )
    await publisher.publish(ahead)  # a publisher whose clock runs a minute ahead
    await redis_client.xtrim(KEYS.user_stream(user), maxlen=0)  # an operator clears history
    # Before the fix: SSEPublishError "attempt to index a nil value" (XREVRANGE is empty).
    assert await publisher.publish(new_event(user))
    assert await redis_client.xlen(KEYS.user_stream(user)) == 1


# -- batching: concurrent publishes coalesce into pipelined round trips --------------------


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
        calls.append(publisher.publish(new_event(u, i=counters[u])))
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
    await publisher.publish(new_event(user, i=0))  # loads the script
    before = batcher.round_trips
    assert await publisher.publish(new_event(user, i=1))
    assert batcher.round_trips - before == 1
    before = batcher.round_trips
    users = [uuid4() for _ in range(40)]
    assert all(await asyncio.gather(*(publisher.publish(new_event(u, i=0)) for u in users * 10)))
    # The first call on each lane leaves alone, the rest queue behind it and leave together.
    assert batcher.round_trips - before <= 2 * LANES
    assert [await _retained(redis_client, u) for u in users] == [[0] * 10] * len(users)


async def test_publishers_sharing_a_client_keep_each_users_call_order(redis: Redis) -> None:
    retained = RedisSSEPublisher(redis, enable_retention=True)
    other = RedisSSEPublisher(redis, enable_retention=True, retention_max_len=500)
    user = uuid4()
    calls = [(retained if i % 3 else other).publish(new_event(user, i=i)) for i in range(300)]
    assert all(await asyncio.gather(*calls))
    assert await _retained(redis, user) == list(range(300))


async def test_one_bad_call_fails_alone(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    strict = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    poisoned = uuid4()
    await redis_client.set(KEYS.user_stream(poisoned), "not a stream")  # every XADD fails
    good = [uuid4() for _ in range(30)]
    calls = [publisher.publish(new_event(u, i=0)) for u in good[:15]]
    calls.append(publisher.publish(new_event(poisoned, i=0)))
    calls += [publisher.publish(new_event(u, i=0)) for u in good[15:]]
    results = await asyncio.gather(*calls)
    assert results == [True] * 15 + [False] + [True] * 15
    assert publisher.stats.failed == 1
    assert publisher.stats.published == 30
    assert [await _retained(redis_client, u) for u in good] == [[0]] * len(good)
    many = [new_event(u, i=1) for u in good[:5]] + [new_event(poisoned, i=1)]
    with pytest.raises(SSEPublishError, match="1 event"):
        await strict.publish_many(many)
    assert [await _retained(redis_client, u) for u in good[:5]] == [[0, 1]] * 5
    assert strict.stats.failed == 1
    assert strict.stats.published == 5


async def _busy_lane(publisher: RedisSSEPublisher, user: UUID, count: int) -> asyncio.Task[bool]:
    """A big publish for ``user`` in flight: calls for that user made meanwhile queue behind it."""
    busy = asyncio.create_task(publisher.publish_many([new_event(user, i=i) for i in range(count)]))
    await asyncio.sleep(0)
    return busy


async def test_a_lost_connection_fails_exactly_the_calls_without_a_reply(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    batcher = RedisBatcher.for_client(redis)
    user = uuid4()
    busy = await _busy_lane(publisher, user, 100)
    before = asyncio.create_task(publisher.publish(new_event(user, i=100)))
    await asyncio.sleep(0)
    # Another caller's command on the same lane, in the same pipeline: the server answers it,
    # then closes the connection without running what follows.
    quit_call = batcher.submit(Call(None, (KEYS.user_stream(user),), ("QUIT",)))
    after = [asyncio.create_task(publisher.publish(new_event(user, i=101 + i))) for i in range(20)]
    assert await busy
    assert await before is True
    assert await quit_call in (b"OK", "OK")
    assert await asyncio.gather(*after) == [False] * 20
    assert (publisher.stats.failed, publisher.stats.published) == (20, 101)
    assert await _retained(redis, user) == list(range(101))
    assert await publisher.publish(new_event(user, i=121))  # a new connection from the pool
    assert (await _retained(redis, user))[-1] == 121


async def test_noscript_resends_only_the_calls_that_did_not_run(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    batcher = RedisBatcher.for_client(redis_client)
    user = uuid4()
    busy = await _busy_lane(publisher, user, 50)  # also loads the script
    first = asyncio.create_task(publisher.publish(new_event(user, i=50)))
    await asyncio.sleep(0)
    # Another client's SCRIPT FLUSH lands between two of our calls (emulated in-band).
    flush = batcher.submit(Call(None, (KEYS.user_stream(user),), ("SCRIPT", "FLUSH")))
    rest = asyncio.gather(*(publisher.publish(new_event(user, i=51 + i)) for i in range(10)))
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
    queued = [
        asyncio.create_task(publisher.publish(new_event(user, i=400 + i))) for i in range(100)
    ]
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
    assert await publisher.publish(new_event(user, i=500))
    assert (await _retained(redis, user))[-1] == 500


async def test_a_caller_cancelled_mid_flight_leaves_the_batch_whole(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    user = uuid4()
    await publisher.publish(new_event(user, i=0))
    first = asyncio.create_task(
        publisher.publish_many([new_event(user, i=i) for i in range(1, 100)])
    )
    await asyncio.sleep(0)
    # 500 calls queue behind the first trip, then leave together (a trip of several ms).
    in_flight = [
        asyncio.create_task(publisher.publish(new_event(user, i=100 + i))) for i in range(500)
    ]
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


async def test_a_lone_caller_cancelled_mid_round_trip_leaves_no_stale_reply(redis: Redis) -> None:
    # A lone publish on an idle lane is sent from its caller's own task: cancelling that
    # caller while its reply is outstanding must not hand the connection, reply still due, to
    # the next command on the pool.
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    user = uuid4()
    await publisher.publish(new_event(user, i=0))  # the script is loaded, the pool warm
    await redis.set("probe", "its own reply")
    await redis.execute_command("CLIENT", "PAUSE", 300, "WRITE")  # holds the script's reply
    lone = asyncio.create_task(publisher.publish(new_event(user, i=1)))
    await asyncio.sleep(0.1)
    lone.cancel()
    await asyncio.gather(lone, return_exceptions=True)
    assert lone.cancelled()
    replies = await asyncio.gather(*(redis.get("probe") for _ in range(8)))
    assert replies == [b"its own reply"] * 8
    assert await publisher.publish(new_event(user, i=2))
    assert (await _retained(redis, user))[-1] == 2


# -- failures: an unreachable Redis; events that cannot be stored -----------------------------
# Issue #9 item 7: a lone surrogate in ``data`` made ``publish()`` raise
# ``PydanticSerializationError`` instead of returning ``False`` (or raising ``SSEPublishError``
# with ``raise_errors``), and ``publish_many`` dropped the whole batch with ``stats.failed`` at 0.
# The publisher now applies the codec's rule before sending: what a reader would refuse is never
# published.


async def test_publisher_reports_failures_and_can_raise(caplog: pytest.LogCaptureFixture) -> None:
    dead = Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    publisher = RedisSSEPublisher(dead, enable_retention=True)
    event = new_event(uuid4())
    with caplog.at_level(logging.WARNING):
        assert await publisher.publish(event) is False
    assert publisher.stats.failed == 1
    assert str(event.event_id) in caplog.text
    strict = RedisSSEPublisher(dead, raise_errors=True)
    with pytest.raises(SSEPublishError, match="1 event"):
        await strict.broadcast(event)
    await dead.aclose()


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


UNSTORABLE: dict[str, dict[str, Any]] = {
    "lone surrogate value": {"s": "\ud800"},
    "lone surrogate key": {"\udfff": 1},
    "5000-digit integer": {"n": int("9" * 4000) * 10**1000},
    "300-deep nesting": {"a": _nested(300)},
}


@pytest.mark.parametrize("retention", [True, False], ids=["retained", "live-only"])
@pytest.mark.parametrize("data", UNSTORABLE.values(), ids=UNSTORABLE.keys())
async def test_publish_returns_false_and_counts(
    redis: Redis, data: dict[str, Any], retention: bool
) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=retention)
    user = uuid4()
    # Before the fix: PydanticSerializationError escaped (lone surrogates), or the event was
    # published and then refused by every reader (huge integers, deep nesting).
    assert await publisher.publish(new_event(user, **data)) is False
    assert (publisher.stats.published, publisher.stats.failed) == (0, 1)
    assert await redis.exists(KEYS.user_stream(user)) == 0


async def test_raise_errors_gives_publish_error(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    with pytest.raises(SSEPublishError, match="cannot be stored"):
        await publisher.publish(new_event(uuid4(), s="\ud800"))
    assert publisher.stats.failed == 1


@pytest.mark.parametrize("retention", [True, False], ids=["retained", "live-only"])
async def test_one_bad_event_never_takes_its_batch_down(redis: Redis, retention: bool) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=retention)
    subscriber = RedisSSESubscriber(redis, enable_retention=retention)
    user = uuid4()
    good = [new_event(user, i=i) for i in range(4)]
    bad = [new_event(user, **data) for data in UNSTORABLE.values()]
    batch = [good[0], bad[0], good[1], bad[1], bad[2], good[2], bad[3], good[3]]
    collector = Collector(subscriber.subscribe(user))
    await wait_subscribed(redis, KEYS.user_channel(user))
    try:
        # Before the fix: the whole batch was lost and stats.failed stayed 0.
        assert await publisher.publish_many(batch) is False
        assert await collector.wait_for(4) == good
    finally:
        await collector.stop()
    assert (publisher.stats.published, publisher.stats.failed) == (4, 4)
    if retention:
        rows = await redis.xrange(KEYS.user_stream(user))
        assert [decode_fields(fields) for _, fields in rows] == good


async def test_raise_errors_still_publishes_the_good_events_first(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    user = uuid4()
    good = new_event(user, i=1)
    with pytest.raises(SSEPublishError, match="1 event"):
        await publisher.publish_many([new_event(user, s="\ud800"), good])
    rows = await redis.xrange(KEYS.user_stream(user))
    assert [decode_fields(fields) for _, fields in rows] == [good]


async def test_the_same_bad_event_to_several_users_counts_once_per_user(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    users = [uuid4() for _ in range(3)]
    assert await publisher.publish_to_users(users, new_event(users[0], s="\ud800")) is False
    assert (publisher.stats.published, publisher.stats.failed) == (0, 3)


def test_the_batchers_packer_sends_exactly_what_redis_py_would() -> None:
    from redis.asyncio.connection import Connection
    from redis.exceptions import DataError

    from sse_core.batcher import pack_commands

    class Kind(StrEnum):
        A = "the value, not the name"

    commands = [
        ("EVALSHA", "f" * 40, 2, "k:{u:1}", b"k2", b"\xff\x00\r\n", 0, -7, 1.5, "é ✓", Kind.A),
        ("PING",),
        ("PUBLISH", "ch", ""),
    ]
    assert pack_commands(commands) == b"".join(Connection().pack_commands(commands))
    with pytest.raises(DataError):
        pack_commands([("SET", "k", True)])
    with pytest.raises(DataError):
        pack_commands([("SET", "k", None)])
