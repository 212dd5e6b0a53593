"""Clients that misbehave on ``GET /events`` (issue #9, items 5, 7b, 7c), real redis-server.

* A client that stops reading is closed after ``SSE_SEND_TIMEOUT_SECONDS`` (both adapters),
  and at its token's expiry even while a write is blocked; nobody else waits for it.
* A connection's queue is bounded in bytes as well as in events.
* A single-valued query parameter given twice is a 400 (a 401 for ``token``).
* A request head over Tornado's 64 KiB limit gets a ``431`` status line from ``ssewatch serve``.

Stuck clients are raw sockets with a small receive buffer that never read
(tests/support/stuck_client.py), so the server's writes really block in the kernel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
import pytest
from httpx_sse import aconnect_sse
from redis.asyncio import Redis

from sse_core import RedisSSEPublisher, SSEEvent, SSEEventType, SSESettings
from sse_core.http import EventStreamEndpoint, TokenSigner
from sse_core.http.request import RequestRejected, check_stream_request
from sse_core.subscriber import RedisSSESubscriber
from tests.support.dashboard import DashboardProcess
from tests.support.http_adapters import ADAPTERS, Adapter, serve_endpoint
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.sse_http import (
    channel_subscribers,
    hub_subscriptions,
    new_secret,
)
from tests.support.stuck_client import events_request, read_to_eof, stuck_client

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

ALICE = UUID("6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f1")
BOB = UUID("6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f2")
SECRET = new_secret()
SEND_TIMEOUT = 1.5
BIG = "x" * 64_000  # a few dozen of these fill a stuck client's kernel buffers


def settings(**overrides: Any) -> SSESettings:
    values: dict[str, Any] = {
        "token_secret": SECRET,
        "heartbeat_seconds": 30,
        "send_timeout_seconds": SEND_TIMEOUT,
    }
    return SSESettings(**(values | overrides))


def token(user: UUID = ALICE, ttl: int = 300) -> str:
    return TokenSigner(SECRET).mint(user, ttl)


def big_event(n: int, user: UUID = ALICE) -> SSEEvent:
    return SSEEvent(event_type=SSEEventType.IMPORT_PROGRESS, user_id=user, data={"n": n, "b": BIG})


@asynccontextmanager
async def on_port(
    adapter: Adapter, redis: Redis, conf: SSESettings
) -> AsyncIterator[tuple[int, EventStreamEndpoint]]:
    """The endpoint through ``adapter``; raw-socket clients need its port rather than its URL."""
    async with serve_endpoint(adapter, redis, conf) as (base, endpoint):
        yield int(base.rsplit(":", 1)[1]), endpoint


async def flood(publisher: RedisSSEPublisher, user: UUID, until: Any, within: float) -> int:
    """Publish big events to ``user`` until ``until()`` holds; how many it took."""
    deadline = time.monotonic() + within
    sent = 0
    while not await until():
        if time.monotonic() > deadline:
            raise AssertionError(f"still open after {within} s and {sent} events")
        await publisher.publish(big_event(sent, user))
        sent += 1
        await asyncio.sleep(0.02)
    return sent


# -- item 5: a client that stops reading ------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_client_that_stops_reading_is_closed_after_the_send_timeout(
    redis: Redis, adapter: Adapter
) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    async with on_port(adapter, redis, settings()) as (port, endpoint):
        sock = await stuck_client(port, events_request(port, token()))
        try:
            await eventually(lambda: channel_subscribers(redis, ALICE), what="SUBSCRIBE")

            async def released() -> bool:
                return endpoint.active_streams == 0 and hub_subscriptions(redis) == 0

            started = time.monotonic()
            sent = await flood(publisher, ALICE, released, within=60)
            took = time.monotonic() - started
            assert took >= SEND_TIMEOUT  # only a write blocked that long closes it
            assert sent > 1
            # The hub forgets the stream at once and unsubscribes a moment later.
            await eventually(
                lambda: channel_subscribers(redis, ALICE), lambda n: n == 0, "UNSUBSCRIBE", 5
            )
            # The connection is really closed: reading now drains what was buffered, then EOF.
            received = await read_to_eof(sock, within=30)
            assert received.startswith(b"HTTP/1.1 200")
        finally:
            sock.close()


@pytest.mark.parametrize("max_seconds", [None, 2.0], ids=["open", "bounded"])
async def test_a_client_that_stops_reading_mid_event_is_closed_after_the_send_timeout(
    redis: Redis, max_seconds: float | None
) -> None:
    """One event bigger than the kernel's buffers, then nothing: what the socket did not take
    waits under the send deadline too, not until the next heartbeat (30 s here); a bounded
    response ends and closes instead of waiting forever to finish."""
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    huge = SSEEvent(
        event_type=SSEEventType.IMPORT_PROGRESS, user_id=ALICE, data={"b": "x" * 8_000_000}
    )
    conf = settings()
    async with serve_endpoint("tornado", redis, conf, max_seconds=max_seconds) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        sock = await stuck_client(port, events_request(port, token()))
        try:
            await eventually(lambda: channel_subscribers(redis, ALICE), what="SUBSCRIBE")
            await publisher.publish(huge)
            await eventually(
                lambda: hub_subscriptions(redis) == 0, what="the stream released", within=10
            )
            await asyncio.sleep(SEND_TIMEOUT + 1)  # past the deadline, still not reading
            received = await read_to_eof(sock, within=10)  # closed: EOF after the buffered part
            assert received.startswith(b"HTTP/1.1 200")
            assert len(received) < len(huge.data["b"])  # given up, not delivered
        finally:
            sock.close()


async def test_others_keep_receiving_while_one_client_is_stuck(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    conf = settings(send_timeout_seconds=60)  # ALICE stays stuck for the whole test
    async with (
        on_port("tornado", redis, conf) as (port, _),
        httpx.AsyncClient(timeout=30) as client,
        aconnect_sse(
            client,
            "GET",
            f"http://127.0.0.1:{port}/events",
            headers={"Authorization": f"Bearer {token(BOB)}"},
        ) as bob,
    ):
        sock = await stuck_client(port, events_request(port, token()))
        try:
            await eventually(lambda: channel_subscribers(redis, ALICE), what="ALICE subscribed")
            await eventually(lambda: channel_subscribers(redis, BOB), what="BOB subscribed")
            for n in range(60):  # ALICE's buffers fill up after a few of these
                await publisher.publish(big_event(n))
            bobs = [
                SSEEvent(event_type=SSEEventType.AI_RESPONSE_CHUNK, user_id=BOB, data={"n": n})
                for n in range(20)
            ]
            await publisher.publish_many(bobs)
            got: list[str] = []

            async def read() -> None:
                async for sse in bob.aiter_sse():
                    if sse.id:
                        got.append(sse.id)
                        if len(got) == len(bobs):
                            return

            await asyncio.wait_for(read(), 20)
            assert got == [str(e.event_id) for e in bobs]
            assert await channel_subscribers(redis, ALICE) == 1  # still stuck, still attached
        finally:
            sock.close()


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_stuck_stream_closes_when_its_token_expires(redis: Redis, adapter: Adapter) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    conf = settings(send_timeout_seconds=120)  # far away: only the expiry can close it
    short = TokenSigner(SECRET).mint(ALICE, ttl_seconds=3)  # whole seconds: valid for 2-3 s
    async with on_port(adapter, redis, conf) as (port, endpoint):
        sock = await stuck_client(port, events_request(port, short))
        try:
            await eventually(lambda: channel_subscribers(redis, ALICE), what="SUBSCRIBE")
            started = time.monotonic()
            for n in range(60):  # blocks the server's write well before the token expires
                await publisher.publish(big_event(n))
            await eventually(
                lambda: endpoint.active_streams == 0 and hub_subscriptions(redis) == 0,
                within=20,
                what="the expired stream to close",
            )
            assert time.monotonic() - started < 20
            await read_to_eof(sock, within=30)
        finally:
            sock.close()


async def test_a_connections_queue_is_bounded_in_bytes(redis: Redis) -> None:
    """Far fewer events than the count bound, but more bytes than the byte bound: the
    consumer is told it fell behind and recovers every event from retention, in order."""
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    subscriber = RedisSSESubscriber(
        redis, enable_retention=True, queue_size=1000, queue_bytes=300_000
    )
    events = [big_event(n) for n in range(30)]  # ~1.9 MB, 30 events
    stream = subscriber.stream(ALICE)
    first = asyncio.ensure_future(anext(stream))
    await eventually(lambda: channel_subscribers(redis, ALICE), what="SUBSCRIBE")
    await publisher.publish_many(events)
    got = [await asyncio.wait_for(first, 10)]
    await eventually(lambda: subscriber.stats.dropped > 0, what="the byte bound to drop")
    try:
        while len(got) < len(events):
            got.append(await asyncio.wait_for(anext(stream), 10))
    finally:
        await stream.aclose()
    assert [item.event_id for item in got] == [e.event_id for e in events]  # type: ignore[union-attr]
    assert subscriber.stats.recoveries >= 1


# -- item 7b: repeated single-valued parameters -----------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "parameter"),
    [
        ({"user": [str(BOB), str(ALICE)]}, 400, "user"),
        ({"user": [str(ALICE), str(ALICE)]}, 400, "user"),
        ({"last_event_id": ["a", "b"]}, 400, "last_event_id"),
        ({"token": ["x", "y"]}, 401, None),
    ],
)
def test_a_repeated_single_valued_parameter_is_rejected(
    query: dict[str, list[str]], status: int, parameter: str | None
) -> None:
    header = None if "token" in query else f"Bearer {token()}"
    with pytest.raises(RequestRejected) as caught:
        check_stream_request(TokenSigner(SECRET), query, authorization=header)
    assert caught.value.status == status
    assert caught.value.parameter == parameter
    assert "more than once" in caught.value.detail


async def test_categories_may_still_repeat(redis: Redis) -> None:
    request = check_stream_request(
        TokenSigner(SECRET),
        {"categories": ["ai", "security,ai"], "user": [str(ALICE)]},
        authorization=f"Bearer {token()}",
    )
    assert [c.value for c in request.categories] == ["ai", "security"]


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_user_b_then_user_a_with_as_token_is_400_on_both_adapters(
    redis: Redis, adapter: Adapter
) -> None:
    async with (
        on_port(adapter, redis, settings()) as (port, _),
        httpx.AsyncClient(timeout=10) as client,
    ):
        response = await client.get(
            f"http://127.0.0.1:{port}/events?user={BOB}&user={ALICE}",
            headers={"Authorization": f"Bearer {token()}"},
        )
    assert response.status_code == 400
    assert response.json()["parameter"] == "user"


# -- item 7c: request heads over the limit --------------------------------------------------------


@pytest.fixture(scope="module")
def served(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardProcess]:
    log = tmp_path_factory.mktemp("hostile") / "serve.log"
    server = DashboardProcess(redis_server.url, log, env={"SSE_TOKEN_SECRET": SECRET})
    try:
        yield server
    finally:
        server.stop()


async def raw_exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


@pytest.mark.parametrize("path", ["/", "/events"])
@pytest.mark.parametrize("size", [70_000, 300_000])
async def test_a_request_head_over_the_limit_gets_431(
    served: DashboardProcess, path: str, size: int
) -> None:
    head = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        f"Authorization: Bearer {token()}\r\nX-Padding: {'p' * size}\r\n\r\n"
    ).encode()
    reply = await raw_exchange(served.port, head)
    assert reply.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), reply[:200]
    assert b'"error": "headers_too_large"' in reply
    # The server is fine afterwards.
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{served.url}/events")
    assert response.status_code == 401
