"""Poison in Redis: entries and messages that cannot become a valid, wire-encodable event.

Issue #9 item 4: one stream entry whose ``data`` was a 5,000-digit integer (past Python's
int-string limit), 5,000-deep nesting (``RecursionError``) or a lone surrogate escape (decodes,
but cannot be encoded for the wire) made every ``replay()`` for that user raise, so ``/events``
ended each response after ``retry:`` and the browser reconnected with the same id forever. The
rule now lives in the codec: such entries are skipped, logged and counted, in replay and live.
All of it on the real redis-server, with entries written raw, as a careless producer would.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import uuid4

import httpx
import pytest
from httpx_sse import aconnect_sse
from redis.asyncio import Redis

from sse_core import RedisSSEPublisher, RedisSSESubscriber, SSEChannelKeys, SSESettings
from sse_core.codec import MalformedEvent, decode_fields, decode_payload
from sse_core.http import STREAM_RESET, TokenSigner
from sse_core.http.tornado import event_routes
from tests.support.poison import (
    POISON_DATA,
    good_event,
    poisoned_stream,
    raw_entry,
    raw_payload,
)
from tests.support.sse_http import new_secret, tornado_server
from tests.support.streams import Collector, wait_subscribed

pytestmark = pytest.mark.redis
KEYS = SSEChannelKeys()


@pytest.mark.parametrize("data", POISON_DATA.values(), ids=POISON_DATA.keys())
def test_the_codec_refuses_each_poison_as_malformed(data: str) -> None:
    user = uuid4()
    with pytest.raises(MalformedEvent):
        decode_fields(raw_entry(user, data))
    with pytest.raises(MalformedEvent):
        decode_payload(raw_payload(user, data))


async def test_replay_skips_and_counts_every_poison_entry(
    redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    user = uuid4()
    first, good = await poisoned_stream(redis_client, publisher, user)
    with caplog.at_level(logging.WARNING):
        replay = await subscriber.replay(user, first.event_id)
    # Before the fix: ValueError (int limit), RecursionError, or an event /events cannot encode.
    assert replay.events == good
    assert replay.complete
    assert subscriber.stats.malformed == len(POISON_DATA)
    assert sum("skipped malformed entry" in r.getMessage() for r in caplog.records) == len(
        POISON_DATA
    )
    for event in replay.events:
        event.to_sse_format()  # every delivered event can go on the wire
    assert await subscriber.get_missed_events(user, first.event_id) == good


async def test_replay_past_undecodable_bytes_leaves_no_connection_behind(
    redis: Redis, redis_url: str
) -> None:
    """A decoding client re-reads a non-UTF-8 entry through a bytes-mode sibling; the sibling
    must close its own pool (before: every such replay left its connections open)."""
    decoding = Redis.from_url(redis_url, decode_responses=True)
    try:
        publisher = RedisSSEPublisher(decoding, enable_retention=True, raise_errors=True)
        subscriber = RedisSSESubscriber(decoding, enable_retention=True)
        user = uuid4()
        first = good_event(user, n=1)
        await publisher.publish(first)
        fields = {**raw_entry(user, "{}"), "data": b'{"s": "\xff"}'}
        await redis.xadd(KEYS.user_stream(user), fields)  # type: ignore[arg-type]
        last = good_event(user, n=2)
        await publisher.publish(last)
        before = len(await redis.client_list())
        for _ in range(5):
            replay = await subscriber.replay(user, first.event_id)
            assert replay.events == [last]
        assert subscriber.stats.malformed == 5
        assert len(await redis.client_list()) <= before + 1  # at most the pool's one reused
    finally:
        await decoding.aclose()


async def test_subscribe_resumes_past_poison_then_goes_live(redis_client: Redis) -> None:
    publisher = RedisSSEPublisher(redis_client, enable_retention=True, raise_errors=True)
    subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
    user = uuid4()
    first, good = await poisoned_stream(redis_client, publisher, user)
    collector = Collector(subscriber.subscribe(user, last_event_id=first.event_id))
    try:
        replayed = await collector.wait_for(len(good))
        await wait_subscribed(redis_client, KEYS.user_channel(user))
        # Live poison too: each message is skipped and counted, the stream goes on.
        for data in POISON_DATA.values():
            await redis_client.publish(KEYS.user_channel(user), raw_payload(user, data))
        fresh = good_event(user, i="live")
        await publisher.publish(fresh)
        got = await collector.wait_for(len(good) + 1)
    finally:
        await collector.stop()
    assert replayed == good
    assert got[-1] == fresh
    assert subscriber.stats.malformed == 2 * len(POISON_DATA)
    assert subscriber.stats.gaps == 0


async def test_events_endpoint_resumes_past_poison_without_a_reset(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    secret = new_secret()
    user = uuid4()
    first, good = await poisoned_stream(redis, publisher, user)
    routes = event_routes(redis, SSESettings(token_secret=secret, heartbeat_seconds=30))
    headers = {
        "Authorization": f"Bearer {TokenSigner(secret).mint(user, 300)}",
        "Last-Event-ID": str(first.event_id),
    }
    got: list[str] = []
    async with (
        tornado_server(routes) as base,
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=headers) as source,
    ):

        async def read() -> None:
            async for sse in source.aiter_sse():
                assert sse.event != STREAM_RESET
                if sse.data:
                    got.append(sse.id)
                    if len(got) == len(good):
                        return

        # Before the fix: the body ended right after "retry:" (replay raised), forever.
        await asyncio.wait_for(read(), 10)
    assert got == [str(e.event_id) for e in good]
    assert routes[0][2]["endpoint"].subscriber.stats.malformed == len(POISON_DATA)
