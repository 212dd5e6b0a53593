"""The subscriber on a real redis-server (both decode_responses modes): live delivery of a user's
own events and broadcasts, category filtering, clean-up, bad input, slow consumers and malformed
messages. Replay and resume are in tests/test_replay.py, the shared connection and its faults in
tests/test_hub_faults.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from sse_core import (
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSEEvent,
    SSEPublisherProtocol,
    SSESubscriberProtocol,
    SubscriberLagged,
)
from sse_core.mailbox import OVERFLOW, RESYNC, Mailbox
from tests.support.streams import (
    Collector,
    eventually,
    live_collector,
    new_event,
    retaining_pair,
    wait_subscribed,
)

KEYS = SSEChannelKeys()


# -- live delivery and filtering -----------------------------------------------------------------


@pytest.mark.redis
async def test_adapters_satisfy_the_protocols(redis_client: Redis) -> None:
    publisher, subscriber = retaining_pair(redis_client)
    assert isinstance(subscriber, SSESubscriberProtocol)
    assert isinstance(publisher, SSEPublisherProtocol)


@pytest.mark.redis
async def test_subscribe_yields_own_and_broadcast_events_in_order(redis_client: Redis) -> None:
    publisher, subscriber = retaining_pair(redis_client)
    alice, bob = uuid4(), uuid4()
    collector = await live_collector(redis_client, subscriber, alice)
    sent = [new_event(alice, i=0), new_event(bob, i=1), new_event(alice, i=2)]
    await publisher.publish(sent[0])
    await publisher.publish(sent[1])
    shout = new_event(bob, "provider.disconnected", provider="plaid")
    await publisher.broadcast(shout)
    await publisher.publish(sent[2])
    got = await collector.wait_for(3)
    assert got == [sent[0], shout, sent[2]]
    await collector.stop()


@pytest.mark.redis
async def test_category_filter_and_publish_to_users(redis_client: Redis) -> None:
    publisher, subscriber = retaining_pair(redis_client)
    user, other = uuid4(), uuid4()
    collector = await live_collector(redis_client, subscriber, user, categories=["security"])
    await publisher.publish(new_event(user, "ai.response.chunk"))
    wanted = new_event(uuid4(), "security.login.failed", ip="203.0.113.9")
    await publisher.publish_to_users([other, user], wanted)
    assert await collector.wait_for(1) == [wanted]
    # The same event reached the other user's stream too, in the same round trip.
    assert (await redis_client.xlen(KEYS.user_stream(other))) == 1
    await collector.stop()


@pytest.mark.redis
async def test_subscribe_cleans_up_when_cancelled(redis_client: Redis) -> None:
    _, subscriber = retaining_pair(redis_client)
    user = uuid4()
    collector = await live_collector(redis_client, subscriber, user)
    await collector.stop()
    await wait_subscribed(redis_client, KEYS.user_channel(user), count=0)
    [(_, count)] = await redis_client.pubsub_numsub(KEYS.user_channel(user))
    assert count == 0
    assert subscriber.connection_status().subscriptions == 0


@pytest.mark.redis
async def test_invalid_input_raises_value_error_before_subscribing(redis_client: Redis) -> None:
    _, subscriber = retaining_pair(redis_client)
    with pytest.raises(ValueError, match="valid categories are"):
        await anext(subscriber.subscribe(uuid4(), categories=["nope"]))
    with pytest.raises(ValueError, match="invalid user id"):
        await anext(subscriber.subscribe("not-a-user"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="UUIDv7"):
        await subscriber.get_missed_events(uuid4(), uuid4())


# -- slow consumers: a bounded mailbox, caught up from retention or told -------------------------


async def test_mailbox_overflow_is_signalled_after_queued_items() -> None:
    box: Mailbox[int] = Mailbox(capacity=3)
    assert all(box.put(i) for i in range(3))
    assert not box.put(3)
    assert not box.put(4)  # still overflowed until drained
    assert box.dropped == 2
    assert [await box.get() for _ in range(3)] == [0, 1, 2]
    assert await box.get() is OVERFLOW
    assert box.put(5)
    assert await box.get() == 5


async def test_mailbox_signals_are_never_dropped_and_wake_the_consumer() -> None:
    box: Mailbox[int] = Mailbox(capacity=1)
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.signal(RESYNC)
    assert await asyncio.wait_for(getter, 1) is RESYNC
    box.put(1)
    box.signal(RESYNC)
    assert [await box.get(), await box.get()] == [1, RESYNC]
    with pytest.raises(ValueError, match="capacity"):
        Mailbox(0)


async def test_a_waiting_consumer_takes_items_at_once_only_while_nothing_is_queued() -> None:
    box: Mailbox[int] = Mailbox(capacity=10)
    taken: list[int] = []

    def take(item: int) -> bool:  # takes even items itself, leaves odd ones to get()
        if item % 2:
            return False
        taken.append(item)
        return True

    assert box.put(0)  # nobody waits: queued, whatever a consumer might take
    assert await box.get(take) == 0
    getter = asyncio.ensure_future(box.get(take))
    await asyncio.sleep(0)
    assert box.put(2)
    assert box.put(4)
    assert taken == [2, 4]
    assert len(box) == 0
    assert not getter.done()
    assert box.put(5)
    assert box.put(6)
    assert taken == [2, 4]
    assert len(box) == 2
    assert await asyncio.wait_for(getter, 1) == 5
    assert box.put(8)  # the consumer no longer waits: queued behind 6
    assert [await box.get(take), await box.get(take)] == [6, 8]
    assert taken == [2, 4]


@pytest.mark.redis
async def test_a_sink_takes_live_events_and_the_rest_keep_their_order(redis_client: Redis) -> None:
    """The fast path ``/events`` uses: what the sink takes is not yielded, nothing reorders."""
    publisher, subscriber = retaining_pair(redis_client)
    user = uuid4()
    delivered: list[object] = []  # in delivery order, whichever path

    def sink(event: SSEEvent) -> bool:
        if event.data["i"] % 3 == 0:
            return False  # as a busy socket would
        delivered.append(event)
        return True

    async def iterated() -> AsyncIterator[object]:
        async for item in subscriber.stream(user, sink=sink):
            delivered.append(item)
            yield item

    collector = Collector(iterated())
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    sent = [new_event(user, i=i) for i in range(12)]
    for n, event in enumerate(sent, 1):
        await publisher.publish(event)
        await eventually(lambda: len(delivered), lambda count: count == n)  # noqa: B023
    assert delivered == sent
    assert collector.items == [e for e in sent if e.data["i"] % 3 == 0]
    assert subscriber.stats.delivered == len(sent)
    await collector.stop()


@pytest.mark.redis
async def test_a_sink_that_raises_fails_neither_its_stream_nor_anyone_elses(
    redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The sink runs inside the shared reader: its error must not stop the reader."""
    publisher, subscriber = retaining_pair(redis_client)
    user = uuid4()
    calls: list[SSEEvent] = []

    def sink(event: SSEEvent) -> bool:
        calls.append(event)
        raise RuntimeError("adapter bug")

    broken = Collector(subscriber.stream(user, sink=sink))
    other = Collector(subscriber.stream(user))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    sent = [new_event(user, i=i) for i in range(3)]
    for event in sent:
        await publisher.publish(event)
    assert await broken.wait_for(3) == sent  # through the iteration instead
    assert await other.wait_for(3) == sent
    assert calls == sent[:1]  # offered once, then never again
    assert "sink failed" in caplog.text
    await broken.stop()
    await other.stop()


@pytest.mark.redis
async def test_replayed_events_and_their_live_duplicates_never_reach_the_sink(
    redis_client: Redis,
) -> None:
    publisher, subscriber = retaining_pair(redis_client)
    user = uuid4()
    before = [new_event(user, i=i) for i in range(3)]
    await publisher.publish_many(before)
    offered: list[SSEEvent] = []

    def sink(event: SSEEvent) -> bool:
        offered.append(event)
        return True

    collector = Collector(subscriber.stream(user, last_event_id=before[0].event_id, sink=sink))
    assert await collector.wait_for(2) == before[1:]
    after = new_event(user, i=3)
    await publisher.publish(after)
    # Just after a replay the hand-over may still hold replayed ids: a live event then comes
    # through the iteration, where duplicates are dropped.
    await eventually(lambda: len(offered) + len(collector.items), lambda n: n == 3)
    assert offered == []
    assert collector.items == [*before[1:], after]
    await collector.stop()


@pytest.mark.redis
async def test_slow_consumer_is_caught_up_from_retention(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True, queue_size=10)
    user = uuid4()
    stream = subscriber.subscribe(user)
    first = new_event(user, i=0)
    pending = asyncio.ensure_future(anext(stream))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    await publisher.publish(first)
    assert await asyncio.wait_for(pending, 5) == first
    burst = [new_event(user, i=i) for i in range(1, 101)]
    await publisher.publish_many(burst)  # the consumer is not reading: its queue overflows
    await eventually(lambda: subscriber.stats.dropped > 0)
    got = [await asyncio.wait_for(anext(stream), 5) for _ in range(100)]
    assert got == burst
    assert subscriber.stats.recoveries == 1
    assert subscriber.stats.lagged == 1  # one overflow, caught up
    await stream.aclose()


@pytest.mark.redis
async def test_slow_consumer_without_retention_is_told(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client)
    subscriber = RedisSSESubscriber(redis_client, queue_size=5)
    user = uuid4()
    stream = subscriber.subscribe(user)
    pending = asyncio.ensure_future(anext(stream))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    await publisher.publish_many([new_event(user, i=i) for i in range(50)])
    assert (await asyncio.wait_for(pending, 5)).data["i"] == 0

    async def drain() -> None:
        for _ in range(50):
            await asyncio.wait_for(anext(stream), 5)

    with pytest.raises(SubscriberLagged, match="fell behind"):
        await drain()
    assert subscriber.stats.dropped > 0
    assert subscriber.stats.lagged == 1


@pytest.mark.redis
async def test_overflow_after_a_stored_foreign_id_is_recovered(redis_client: Redis) -> None:
    """Regression (second read of the core): recovering from an overflow after a stored event
    whose id is not a UUIDv7 (another producer's) ended the stream."""
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True, queue_size=1)
    user = uuid4()
    stream = subscriber.subscribe(user)
    pending = asyncio.ensure_future(anext(stream))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    first = new_event(user)
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
    burst = [new_event(user, i=i) for i in range(10)]
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


# -- malformed messages --------------------------------------------------------------------------


@pytest.mark.redis
async def test_malformed_messages_are_skipped_and_counted(redis_client: Redis) -> None:
    publisher, subscriber = retaining_pair(redis_client)
    user = uuid4()
    collector = await live_collector(redis_client, subscriber, user)
    await redis_client.publish(KEYS.user_channel(user), b"{not json")
    await redis_client.publish(KEYS.user_channel(user), b'{"event_type": "nope"}')
    good = new_event(user)
    await publisher.publish(good)
    assert await collector.wait_for(1) == [good]
    assert subscriber.stats.malformed == 2
    await redis_client.xadd(KEYS.user_stream(user), {"event_id": "garbage", "data": "{"})
    after = new_event(user)
    await publisher.publish(after)
    assert await subscriber.get_missed_events(user, good.event_id) == [after]
    assert subscriber.stats.malformed == 3
    await collector.stop()
