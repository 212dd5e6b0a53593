"""Publisher and subscriber against a real redis-server (both decode_responses modes)."""

from __future__ import annotations

import asyncio
import logging
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
    SSEPublisherProtocol,
    SSEPublishError,
    SSESubscriberProtocol,
    StreamGap,
    SubscriberLagged,
    uuid7,
)
from sse_core.hub import SubscriptionHub
from tests.support.streams import Collector, eventually, wait_subscribed

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


def _event(user: UUID, event_type: str = "ai.response.chunk", **data: Any) -> SSEEvent:
    return SSEEvent(event_type=event_type, user_id=user, data=data)


def _pair(client: Redis, **kw: Any) -> tuple[RedisSSEPublisher, RedisSSESubscriber]:
    retention = kw.pop("enable_retention", True)
    publisher = RedisSSEPublisher(client, enable_retention=retention, **kw)
    return publisher, RedisSSESubscriber(client, enable_retention=retention)


async def _live(client: Redis, subscriber: RedisSSESubscriber, user: UUID, **kw: Any) -> Collector:
    collector = Collector(subscriber.subscribe(user, **kw))
    await wait_subscribed(client, KEYS.user_channel(user))
    return collector


async def test_adapters_satisfy_the_protocols(redis_client: Redis) -> None:
    publisher, subscriber = _pair(redis_client)
    assert isinstance(subscriber, SSESubscriberProtocol)
    assert isinstance(publisher, SSEPublisherProtocol)


async def test_subscribe_yields_own_and_broadcast_events_in_order(redis_client: Redis) -> None:
    publisher, subscriber = _pair(redis_client)
    alice, bob = uuid4(), uuid4()
    collector = await _live(redis_client, subscriber, alice)
    sent = [_event(alice, i=0), _event(bob, i=1), _event(alice, i=2)]
    await publisher.publish(sent[0])
    await publisher.publish(sent[1])
    shout = _event(bob, "provider.disconnected", provider="plaid")
    await publisher.broadcast(shout)
    await publisher.publish(sent[2])
    got = await collector.wait_for(3)
    assert got == [sent[0], shout, sent[2]]
    await collector.stop()


async def test_category_filter_and_publish_to_users(redis_client: Redis) -> None:
    publisher, subscriber = _pair(redis_client)
    user, other = uuid4(), uuid4()
    collector = await _live(redis_client, subscriber, user, categories=["security"])
    await publisher.publish(_event(user, "ai.response.chunk"))
    wanted = _event(uuid4(), "security.login.failed", ip="203.0.113.9")
    await publisher.publish_to_users([other, user], wanted)
    assert await collector.wait_for(1) == [wanted]
    # The same event reached the other user's stream too, in the same round trip.
    assert (await redis_client.xlen(KEYS.user_stream(other))) == 1
    await collector.stop()


async def test_subscribe_cleans_up_when_cancelled(redis_client: Redis) -> None:
    _, subscriber = _pair(redis_client)
    user = uuid4()
    collector = await _live(redis_client, subscriber, user)
    await collector.stop()
    await wait_subscribed(redis_client, KEYS.user_channel(user), count=0)
    [(_, count)] = await redis_client.pubsub_numsub(KEYS.user_channel(user))
    assert count == 0
    assert subscriber.connection_status().subscriptions == 0


async def test_invalid_input_raises_value_error_before_subscribing(redis_client: Redis) -> None:
    _, subscriber = _pair(redis_client)
    with pytest.raises(ValueError, match="valid categories are"):
        await anext(subscriber.subscribe(uuid4(), categories=["nope"]))
    with pytest.raises(ValueError, match="invalid user id"):
        await anext(subscriber.subscribe("not-a-user"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="UUIDv7"):
        await subscriber.get_missed_events(uuid4(), uuid4())


async def test_publish_appends_and_publishes_atomically_with_bounds(redis_client: Redis) -> None:
    publisher, _ = _pair(redis_client, retention_max_len=1000, retention_ttl_seconds=60)
    user = uuid4()
    event = _event(user, "portfolio.balance.updated", balance=10.5)
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


async def test_retention_is_bounded_by_size(redis_client: Redis) -> None:
    publisher, _ = _pair(redis_client, retention_max_len=100)
    user = uuid4()
    for _ in range(10):
        await publisher.publish_many([_event(user) for _ in range(100)])
    length = await redis_client.xlen(KEYS.user_stream(user))
    assert 100 <= length < 300  # MAXLEN ~ trims whole macro nodes


async def test_retention_is_bounded_by_age_on_every_append(redis_client: Redis) -> None:
    # Entries two minutes old, written under a one-hour TTL; then a write under a one-minute TTL
    # (ages are measured on the Redis server's clock).
    keeper, _ = _pair(redis_client, retention_ttl_seconds=3600)
    publisher, _ = _pair(redis_client, retention_ttl_seconds=60)
    user = uuid4()
    old_ms = uuid7().int >> 80
    old = [
        SSEEvent(
            event_id=uuid7(now_ms=old_ms - 120_000 + i),
            event_type="ai.response.chunk",
            user_id=user,
        )
        for i in range(300)
    ]
    await keeper.publish_many(old)
    assert await redis_client.xlen(KEYS.user_stream(user)) == 300
    fresh = _event(user)
    await publisher.publish(fresh)
    remaining = await redis_client.xrange(KEYS.user_stream(user))
    assert len(remaining) < 301  # MINID ~ removed the aged-out macro nodes
    assert len(remaining) <= 101


async def test_idle_expiry_is_refreshed_by_every_write(redis_client: Redis) -> None:
    publisher, _ = _pair(redis_client, retention_ttl_seconds=30)
    user = uuid4()
    await publisher.publish(_event(user))
    await redis_client.pexpire(KEYS.user_stream(user), 500)
    await publisher.publish(_event(user))
    assert await redis_client.pttl(KEYS.user_stream(user)) > 25_000


async def test_get_missed_events_returns_later_user_and_broadcast_events(
    redis_client: Redis,
) -> None:
    publisher, subscriber = _pair(redis_client)
    user, other = uuid4(), uuid4()
    first = _event(user, i=0)
    await publisher.publish(first)
    later = []
    for event in (_event(user, i=1), _event(other, i=2)):
        later.append(event)
        await publisher.publish(event)
    shout = _event(other, "provider.disconnected")
    await publisher.broadcast(shout)
    later.append(_event(user, "security.session.new"))
    await publisher.publish(later[2])
    missed = await subscriber.get_missed_events(user, first.event_id)
    assert missed == [later[0], shout, later[2]]
    only_security = await subscriber.get_missed_events(user, first.event_id, ["security"])
    assert only_security == [later[2]]
    assert await subscriber.get_missed_events(user, later[2].event_id) == []
    replay = await subscriber.replay(user, first.event_id)
    assert replay.complete
    assert replay.events == missed
    # A broadcast id is a valid resume point too.
    assert await subscriber.get_missed_events(user, shout.event_id) == [later[2]]


async def test_missed_events_empty_without_retention(redis_client: Redis) -> None:
    publisher, subscriber = _pair(redis_client, enable_retention=False)
    user = uuid4()
    first = _event(user)
    await publisher.publish(first)
    await publisher.publish(_event(user))
    assert await subscriber.get_missed_events(user, first.event_id) == []
    assert not await redis_client.exists(KEYS.user_stream(user))


async def test_replay_seeks_instead_of_scanning(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher, subscriber = _pair(redis_client, retention_max_len=10_000)
    user = uuid4()
    base_ms = (uuid7().int >> 80) - 50_000
    history = [
        SSEEvent(event_id=uuid7(now_ms=base_ms + i), event_type="ai.response.chunk", user_id=user)
        for i in range(5000)
    ]
    await publisher.publish_many(history)
    decoded = 0
    import sse_core.retention as retention

    real_decode = retention.decode_fields

    def counting_decode(fields: Any) -> SSEEvent:
        nonlocal decoded
        decoded += 1
        return real_decode(fields)

    monkeypatch.setattr(retention, "decode_fields", counting_decode)
    missed = await subscriber.get_missed_events(user, history[-11].event_id)
    assert missed == history[-10:]
    assert decoded <= 11  # read from the last id's millisecond, not the 5,000-entry history


async def test_replay_reports_incomplete_when_retention_was_outrun(redis_client: Redis) -> None:
    publisher, subscriber = _pair(redis_client, retention_max_len=50)
    user = uuid4()
    first = _event(user)
    await publisher.publish(first)
    for _ in range(5):
        await publisher.publish_many([_event(user) for _ in range(100)])
    replay = await subscriber.replay(user, first.event_id)
    assert replay.complete is False
    assert 50 <= len(replay.events) < 500
    # The seed's contract still holds: a list of what is retained after the id.
    assert await subscriber.get_missed_events(user, first.event_id) == replay.events


async def test_replay_reports_incomplete_after_a_stream_reset(redis_client: Redis) -> None:
    publisher, subscriber = _pair(redis_client)
    user = uuid4()
    first = _event(user)
    await publisher.publish(first)
    await redis_client.delete(KEYS.user_stream(user))
    after = _event(user)
    await publisher.publish(after)
    replay = await subscriber.replay(user, first.event_id)
    assert replay.complete is False
    assert replay.events == [after]


async def test_resume_hands_over_to_live_without_gap_or_duplicate(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher, subscriber = _pair(redis_client)
    user = uuid4()
    seen = _event(user, i=0)
    missed = [_event(user, i=1), _event(user, i=2)]
    await publisher.publish(seen)
    for event in missed:
        await publisher.publish(event)
    during = [_event(user, i=3), _event(user, i=4)]
    real_replay = subscriber.retention.resume

    async def replay_with_traffic(*args: Any, **kwargs: Any) -> Any:
        # Published after the live subscription is confirmed and before the snapshot: these
        # are both live and in the replay, and must be delivered exactly once.
        await publisher.publish(during[0])
        result = await real_replay(*args, **kwargs)
        await publisher.publish(during[1])  # after the snapshot: live only
        return result

    monkeypatch.setattr(subscriber.retention, "resume", replay_with_traffic)
    collector = Collector(subscriber.subscribe(user, last_event_id=seen.event_id))
    got = await collector.wait_for(4)
    after = _event(user, i=5)
    await publisher.publish(after)
    got = await collector.wait_for(5)
    assert [e.data["i"] for e in got] == [1, 2, 3, 4, 5]
    await asyncio.sleep(0.2)
    assert len(collector.items) == 5
    assert subscriber.stats.duplicates == 1
    await collector.stop()


async def test_resume_without_retention_signals_a_gap(redis_client: Redis) -> None:
    _, subscriber = _pair(redis_client, enable_retention=False)
    collector = Collector(subscriber.stream(uuid4(), last_event_id=uuid7()))
    [gap] = await collector.wait_for(1)
    assert isinstance(gap, StreamGap)
    assert gap.reason == "resume"
    await collector.stop()


async def test_many_subscribers_share_one_pubsub_connection(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    users = [uuid4() for _ in range(100)]
    # Request-scoped: every consumer builds its own subscriber on the shared client.
    collectors = [
        Collector(RedisSSESubscriber(redis_client, enable_retention=True).subscribe(u))
        for u in users
    ]
    for user in users:
        await wait_subscribed(redis_client, KEYS.user_channel(user))
    clients = await redis_client.client_list()
    pubsub_clients = [c for c in clients if int(c.get("sub", 0)) > 0]
    assert len(pubsub_clients) == 1
    assert len(clients) <= 5
    shout = _event(uuid4(), "security.password.changed")
    await publisher.broadcast(shout)
    for collector in collectors:
        assert await collector.wait_for(1) == [shout]
    for collector in collectors:
        await collector.stop()


async def test_slow_consumer_is_caught_up_from_retention(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True, queue_size=10)
    user = uuid4()
    stream = subscriber.subscribe(user)
    first = _event(user, i=0)
    pending = asyncio.ensure_future(anext(stream))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    await publisher.publish(first)
    assert await asyncio.wait_for(pending, 5) == first
    burst = [_event(user, i=i) for i in range(1, 101)]
    await publisher.publish_many(burst)  # the consumer is not reading: its queue overflows
    await eventually(lambda: subscriber.stats.dropped > 0)
    got = [await asyncio.wait_for(anext(stream), 5) for _ in range(100)]
    assert got == burst
    assert subscriber.stats.recoveries == 1
    assert subscriber.stats.lagged == 1  # one overflow, caught up
    await stream.aclose()


async def test_slow_consumer_without_retention_is_told(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client)
    subscriber = RedisSSESubscriber(redis_client, queue_size=5)
    user = uuid4()
    stream = subscriber.subscribe(user)
    pending = asyncio.ensure_future(anext(stream))
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    await publisher.publish_many([_event(user, i=i) for i in range(50)])
    assert (await asyncio.wait_for(pending, 5)).data["i"] == 0

    async def drain() -> None:
        for _ in range(50):
            await asyncio.wait_for(anext(stream), 5)

    with pytest.raises(SubscriberLagged, match="fell behind"):
        await drain()
    assert subscriber.stats.dropped > 0
    assert subscriber.stats.lagged == 1


async def test_malformed_messages_are_skipped_and_counted(redis_client: Redis) -> None:
    publisher, subscriber = _pair(redis_client)
    user = uuid4()
    collector = await _live(redis_client, subscriber, user)
    await redis_client.publish(KEYS.user_channel(user), b"{not json")
    await redis_client.publish(KEYS.user_channel(user), b'{"event_type": "nope"}')
    good = _event(user)
    await publisher.publish(good)
    assert await collector.wait_for(1) == [good]
    assert subscriber.stats.malformed == 2
    await redis_client.xadd(KEYS.user_stream(user), {"event_id": "garbage", "data": "{"})
    after = _event(user)
    await publisher.publish(after)
    assert await subscriber.get_missed_events(user, good.event_id) == [after]
    assert subscriber.stats.malformed == 3
    await collector.stop()


async def test_dropped_connection_is_survived_and_gap_replayed(redis_client: Redis) -> None:
    publisher, subscriber = _pair(redis_client)
    user = uuid4()
    collector = await _live(redis_client, subscriber, user)
    before = _event(user, i=0)
    await publisher.publish(before)
    await collector.wait_for(1)
    await redis_client.client_kill_filter(_type="pubsub")
    during = [_event(user, i=i) for i in range(1, 6)]
    await publisher.publish_many(during)  # may land while the subscriber reconnects
    await eventually(lambda: subscriber.connection_status().reconnects >= 1)
    await wait_subscribed(redis_client, KEYS.user_channel(user))
    after = _event(user, i=6)
    await publisher.publish(after)
    got = await collector.wait_for(7)
    assert [e.data["i"] for e in got] == list(range(7))
    await asyncio.sleep(0.2)
    assert len(collector.items) == 7
    await collector.stop()


async def test_publisher_reports_failures_and_can_raise(caplog: pytest.LogCaptureFixture) -> None:
    from tests.support.redis_server import free_port

    dead = Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    publisher = RedisSSEPublisher(dead, enable_retention=True)
    event = _event(uuid4())
    with caplog.at_level(logging.WARNING):
        assert await publisher.publish(event) is False
    assert publisher.stats.failed == 1
    assert str(event.event_id) in caplog.text
    strict = RedisSSEPublisher(dead, raise_errors=True)
    with pytest.raises(SSEPublishError, match="1 event"):
        await strict.broadcast(event)
    await dead.aclose()


async def test_hub_is_shared_per_client(redis_client: Redis) -> None:
    assert SubscriptionHub.for_client(redis_client) is SubscriptionHub.for_client(redis_client)
