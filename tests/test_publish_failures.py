"""Publishing events that cannot be stored: each fails alone, is counted, and never sinks a batch.

Issue #9 item 7: a lone surrogate in ``data`` made ``publish()`` raise
``PydanticSerializationError`` instead of returning ``False`` (or raising ``SSEPublishError``
with ``raise_errors``), and ``publish_many`` dropped the whole batch with ``stats.failed`` at 0.
The publisher now applies the codec's rule before sending: what a reader would refuse is never
published. On the real redis-server, with a live subscriber and the retention stream checked.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis

from sse_core import (
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSEEvent,
    SSEPublishError,
)
from sse_core.codec import decode_fields
from tests.support.streams import Collector, wait_subscribed

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


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


def _event(user: UUID, **data: Any) -> SSEEvent:
    return SSEEvent(event_type="ai.response.chunk", user_id=user, data=data)


@pytest.mark.parametrize("retention", [True, False], ids=["retained", "live-only"])
@pytest.mark.parametrize("data", UNSTORABLE.values(), ids=UNSTORABLE.keys())
async def test_publish_returns_false_and_counts(
    redis: Redis, data: dict[str, Any], retention: bool
) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=retention)
    user = uuid4()
    # Before the fix: PydanticSerializationError escaped (lone surrogates), or the event was
    # published and then refused by every reader (huge integers, deep nesting).
    assert await publisher.publish(_event(user, **data)) is False
    assert (publisher.stats.published, publisher.stats.failed) == (0, 1)
    assert await redis.exists(KEYS.user_stream(user)) == 0


async def test_raise_errors_gives_publish_error(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    with pytest.raises(SSEPublishError, match="cannot be stored"):
        await publisher.publish(_event(uuid4(), s="\ud800"))
    assert publisher.stats.failed == 1


@pytest.mark.parametrize("retention", [True, False], ids=["retained", "live-only"])
async def test_one_bad_event_never_takes_its_batch_down(redis: Redis, retention: bool) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=retention)
    subscriber = RedisSSESubscriber(redis, enable_retention=retention)
    user = uuid4()
    good = [_event(user, i=i) for i in range(4)]
    bad = [_event(user, **data) for data in UNSTORABLE.values()]
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
    good = _event(user, i=1)
    with pytest.raises(SSEPublishError, match="1 event"):
        await publisher.publish_many([_event(user, s="\ud800"), good])
    rows = await redis.xrange(KEYS.user_stream(user))
    assert [decode_fields(fields) for _, fields in rows] == [good]


async def test_the_same_bad_event_to_several_users_counts_once_per_user(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    users = [uuid4() for _ in range(3)]
    assert await publisher.publish_to_users(users, _event(users[0], s="\ud800")) is False
    assert (publisher.stats.published, publisher.stats.failed) == (0, 3)
