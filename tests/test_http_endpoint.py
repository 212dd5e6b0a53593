"""``GET /events``' rules on both adapters, Tornado and ASGI (uvicorn), against the real
redis-server, with real clients. Adapter-only matters (the ASGI route builder, the runnable
example) are in tests/test_http_asgi.py.

Clients are ``httpx`` + ``httpx-sse``; where the raw wire matters (the ``retry:`` hint first,
heartbeat comments) the test reads raw lines.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from uuid import UUID

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from redis.asyncio import Redis

from sse_core import RedisSSEPublisher, SSEEvent, SSEEventType, SSESettings
from sse_core.http import STREAM_RESET, EventStreamEndpoint, TokenSigner
from sse_core.http.request import redact_token
from sse_core.http.tornado import EventStreamHandler, event_routes
from tests.support.http_adapters import ADAPTERS, serve_endpoint
from tests.support.polling import eventually
from tests.support.sse_http import (
    as_received,
    as_sent,
    channel_subscribers,
    hub_subscriptions,
    new_secret,
    tornado_server,
)

pytestmark = pytest.mark.redis

ALICE = UUID("8a0c3f52-2c3e-4a57-9b7e-0d1b6a1f0a01")
BOB = UUID("8a0c3f52-2c3e-4a57-9b7e-0d1b6a1f0b02")
SECRET = new_secret()


@pytest.fixture
def publisher(redis: Redis) -> RedisSSEPublisher:
    return RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)


def sse_settings(**overrides: Any) -> SSESettings:
    values: dict[str, Any] = {"token_secret": SECRET, "retry_ms": 1500, "heartbeat_seconds": 30}
    values.update(overrides)
    return SSESettings(**values)


def token(user: UUID = ALICE, ttl: int = 300) -> str:
    return TokenSigner(SECRET).mint(user, ttl)


def auth(user: UUID = ALICE) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}


Serve = Callable[..., AbstractAsyncContextManager[tuple[str, EventStreamEndpoint]]]


@pytest.fixture(params=ADAPTERS)
def serve(request: pytest.FixtureRequest, redis: Redis) -> Serve:
    """Opens ``GET /events`` through each adapter in turn: every rule runs on Tornado and ASGI."""

    def open_endpoint(
        *, settings: SSESettings | None = None, max_events: int | None = None
    ) -> AbstractAsyncContextManager[tuple[str, EventStreamEndpoint]]:
        conf = settings or sse_settings()
        return serve_endpoint(request.param, redis, conf, max_events=max_events)

    return open_endpoint


def event(user: UUID = ALICE, kind: SSEEventType = SSEEventType.AI_RESPONSE_CHUNK, **data: Any):
    return SSEEvent(event_type=kind, user_id=user, data=data)


async def take(source: AsyncIterator[ServerSentEvent], count: int) -> list[ServerSentEvent]:
    """The next ``count`` messages that carry data (skips the bare ``retry:`` message)."""
    got: list[ServerSentEvent] = []

    async def run() -> None:
        async for sse in source:
            if sse.data:
                got.append(sse)
                if len(got) == count:
                    return

    await asyncio.wait_for(run(), 10)
    return got


async def live(redis: Redis, user: UUID = ALICE, count: int = 1) -> None:
    """Wait until Redis itself reports the endpoint subscribed (publishing is then safe)."""
    await eventually(lambda: channel_subscribers(redis, user), what="SUBSCRIBE")
    await eventually(lambda: hub_subscriptions(redis) >= count, what="hub subscription")


async def test_stream_starts_with_retry_then_delivers_live_events(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    sent = [event(step=i) for i in range(3)]
    async with (
        serve() as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{base}/events", headers=auth()) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 1500"
        await live(redis)
        for e in sent:
            await publisher.publish(e)
        wire = [await asyncio.wait_for(anext(lines), 5) for _ in range(4 * len(sent) + 1)]
    assert wire[0] == ""
    messages = "\n".join(wire[1:]).split("\n\n")
    assert [m.splitlines()[0] for m in messages if m] == [f"id: {e.event_id}" for e in sent]
    for e, message in zip(sent, messages, strict=False):
        # The seed's bytes: id, event name, data = json.dumps(payload) only.
        assert message.strip("\n").split("\n") == [
            f"id: {e.event_id}",
            f"event: {e.event_type.value}",
            f"data: {json.dumps(e.data)}",
        ]


async def one_by_one(
    redis: Redis, publisher: RedisSSEPublisher, base: str, events: list[SSEEvent], *, ends: bool
) -> list[str]:
    """Ids a client got for ``events`` published one at a time, each once the last arrived (so
    each finds the stream idle); with ``ends``, the response must then end by itself."""
    got: list[str] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=auth()) as source,
    ):

        async def read() -> None:
            async for sse in source.aiter_sse():
                if sse.data:
                    got.append(sse.id)
                    if len(got) == len(events) and not ends:
                        return

        reader = asyncio.ensure_future(read())
        await live(redis)
        for n, e in enumerate(events, 1):
            await publisher.publish(e)
            await eventually(lambda: len(got), lambda count: count == n)  # noqa: B023
        await asyncio.wait_for(reader, 10)
    return got


async def test_tornado_writes_live_events_onto_an_idle_socket_from_the_reader(
    redis: Redis, publisher: RedisSSEPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fan-out fast path is really taken (a Tornado that frames differently turns it off)."""
    taken: list[bool] = []
    write_now = EventStreamHandler._write_now

    def spy(handler: EventStreamHandler, chunk: str) -> bool:
        taken.append(write_now(handler, chunk))
        return taken[-1]

    monkeypatch.setattr(EventStreamHandler, "_write_now", spy)
    sent = [event(n=i, text="multi\nline " + "x" * (i * 5000)) for i in range(5)]
    async with serve_endpoint("tornado", redis, sse_settings()) as (base, _):
        got = await one_by_one(redis, publisher, base, sent, ends=False)
    assert got == [str(e.event_id) for e in sent]
    # The first may beat the stream to its first wait (then it is queued, not offered); each
    # later one finds the stream waiting on an idle socket.
    assert taken[-4:] == [True] * 4


async def test_tornado_with_compression_still_sends_a_readable_stream(
    redis: Redis, publisher: RedisSSEPublisher
) -> None:
    """Compressed output goes through Tornado's transform, never the raw fast path."""
    sent = [event(n=i, text="x" * (i * 3000)) for i in range(3)]
    async with (
        tornado_server(event_routes(redis, sse_settings()), compress_response=True) as base,
        httpx.AsyncClient(timeout=10) as client,  # asks for gzip and inflates it
        aconnect_sse(client, "GET", f"{base}/events", headers=auth()) as source,
    ):
        assert source.response.headers["content-encoding"] == "gzip"
        got: list[str] = []

        async def read() -> None:
            async for sse in source.aiter_sse():
                if sse.data:
                    got.append(sse.id)

        reader = asyncio.ensure_future(read())
        await live(redis)
        for n, e in enumerate(sent, 1):
            await publisher.publish(e)
            await eventually(lambda: reader.done() or len(got) == n)  # noqa: B023
        if reader.done():
            reader.result()  # raises what broke the stream (a body that does not inflate)
        reader.cancel()
    assert got == [str(e.event_id) for e in sent]


async def test_live_events_end_a_bounded_response_exactly_at_max_events(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    sent = [event(n=i) for i in range(3)]
    async with serve(max_events=3) as (base, _):
        got = await one_by_one(redis, publisher, base, sent, ends=True)
    assert got == [str(e.event_id) for e in sent]


async def test_envelope_is_opt_in(redis: Redis, serve: Serve, publisher: RedisSSEPublisher) -> None:
    e = event(step=1)
    async with (
        serve(settings=sse_settings(event_envelope=True)) as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=auth()) as source,
    ):
        await live(redis)
        await publisher.publish(e)
        [got] = await take(source.aiter_sse(), 1)
    assert got.id == str(e.event_id)
    assert SSEEvent.model_validate_json(got.data) == e


async def test_only_the_token_users_events_and_broadcasts_arrive(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    mine, theirs, everyone = event(ALICE, n=1), event(BOB, n=2), event(ALICE, n=3)
    async with (
        serve() as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=auth(ALICE)) as source,
    ):
        await live(redis)
        await publisher.publish(theirs)
        await publisher.publish(mine)
        await publisher.broadcast(everyone)
        got = await take(source.aiter_sse(), 2)
    assert [s.id for s in got] == [str(mine.event_id), str(everyone.event_id)]


async def test_categories_filter_repeated_and_comma_separated(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    kinds = [
        SSEEventType.SYNC_ACCOUNTS_COMPLETED,  # data_sync
        SSEEventType.AI_RESPONSE_CHUNK,  # ai
        SSEEventType.SECURITY_SESSION_NEW,  # security
        SSEEventType.PORTFOLIO_BALANCE_UPDATED,  # portfolio
    ]
    events = [event(kind=k) for k in kinds]
    url = "/events?categories=ai,security&categories=portfolio"
    async with (
        serve() as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", base + url, headers=auth()) as source,
    ):
        await live(redis)
        await publisher.publish_many(events)
        got = await take(source.aiter_sse(), 3)
    assert [s.event for s in got] == [k.value for k in kinds[1:]]


@pytest.mark.parametrize(
    ("query", "headers", "parameter", "mentions"),
    [
        ("categories=ai,weather", {}, "categories", "valid categories are: data_sync"),
        ("last_event_id=not-a-uuid", {}, "last_event_id", "expected a UUID"),
        (f"last_event_id={UUID(int=5, version=4)}", {}, "last_event_id", "UUIDv7"),
        ("", {"Last-Event-ID": "garbage"}, "Last-Event-ID", "expected a UUID"),
        ("user=nobody", {}, "user", "invalid user id"),
    ],
)
async def test_bad_input_is_400_json_before_any_stream(
    redis: Redis, serve: Serve, query: str, headers: dict[str, str], parameter: str, mentions: str
) -> None:
    async with serve() as (base, endpoint), httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base}/events?{query}", headers={**auth(), **headers})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["parameter"] == parameter
    assert mentions in body["detail"]
    assert endpoint.active_streams == 0
    assert hub_subscriptions(redis) == 0


def _other_secret() -> str:
    return TokenSigner(new_secret()).mint(ALICE, 60)


def _expired() -> str:
    return TokenSigner(SECRET, clock=lambda: 1e9).mint(ALICE, 60)  # expired in 2001


def _forged() -> str:
    header, payload, signature = token().split(".")
    return f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"


def _alg_none() -> str:
    """An unsigned JWT (``alg: none``) naming Alice: the oldest JWT forgery there is."""
    _, payload, _ = token().split(".")
    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{none}.{payload}."


@pytest.mark.parametrize(
    ("headers", "query", "error"),
    [
        ({}, "", "token_missing"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "", "token_missing"),
        ({"Authorization": "Bearer nonsense"}, "", "token_malformed"),
        ({"Authorization": f"Bearer {_other_secret()}"}, "", "token_bad_signature"),
        ({"Authorization": f"Bearer {_forged()}"}, "", "token_bad_signature"),
        ({"Authorization": f"Bearer {_expired()}"}, "", "token_expired"),
        ({}, f"token={_alg_none()}", "token_bad_signature"),
    ],
    ids=["none", "basic", "malformed", "other-secret", "forged", "expired", "query-forged"],
)
async def test_missing_forged_or_expired_tokens_get_401(
    redis: Redis, serve: Serve, headers: dict[str, str], query: str, error: str
) -> None:
    # Bad parameters too: authentication is checked first and reveals nothing else.
    async with serve() as (base, _), httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base}/events?categories=bogus&{query}", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == error
    assert response.headers["www-authenticate"].startswith('Bearer realm="ssewatch"')
    assert hub_subscriptions(redis) == 0


async def test_token_in_query_string_works_for_eventsource(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    e = event()
    async with serve() as (base, _), httpx.AsyncClient(timeout=10) as client:
        url = f"{base}/events?token={token()}"
        async with aconnect_sse(client, "GET", url) as source:
            await live(redis)
            await publisher.publish(e)
            [got] = await take(source.aiter_sse(), 1)
    assert got.id == str(e.event_id)


async def test_other_users_stream_is_403_and_own_user_param_is_fine(
    redis: Redis, serve: Serve
) -> None:
    async with serve() as (base, _), httpx.AsyncClient(timeout=10) as client:
        denied = await client.get(f"{base}/events?user={BOB}", headers=auth(ALICE))
        async with client.stream("GET", f"{base}/events?user={ALICE}", headers=auth()) as ok:
            status = ok.status_code
    assert denied.status_code == 403
    assert denied.json()["error"] == "forbidden"
    assert status == 200


async def test_no_secret_configured_means_503_never_an_open_stream(
    redis: Redis, serve: Serve
) -> None:
    conf = sse_settings(token_secret=None)
    async with serve(settings=conf) as (base, _), httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base}/events", headers=auth())
    assert response.status_code == 503
    assert "SSE_TOKEN_SECRET" in response.json()["detail"]


async def test_idle_stream_sends_heartbeat_comments(redis: Redis, serve: Serve) -> None:
    conf = sse_settings(heartbeat_seconds=0.1)
    async with (
        serve(settings=conf) as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{base}/events", headers=auth()) as response,
    ):
        lines = response.aiter_lines()
        wire = [await asyncio.wait_for(anext(lines), 5) for _ in range(6)]
    assert wire == ["retry: 1500", "", ": ping", "", ": ping", ""]


async def test_resume_replays_missed_events_then_goes_live_without_duplicates(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    before = [event(n=i) for i in range(5)]
    after = [event(n=i) for i in range(5, 8)]
    await publisher.publish_many(before)
    resume = {**auth(), "Last-Event-ID": str(before[1].event_id)}
    decoy = before[3].event_id  # the header must win over the query parameter
    async with serve() as (base, _), httpx.AsyncClient(timeout=10) as client:
        url = f"{base}/events?last_event_id={decoy}"
        async with aconnect_sse(client, "GET", url, headers=resume) as source:
            messages = source.aiter_sse()
            replayed = await take(messages, 3)
            await live(redis)
            await publisher.publish_many(after)
            fresh = await take(messages, 3)
    assert [s.id for s in replayed + fresh] == [str(e.event_id) for e in before[2:] + after]


async def test_first_connection_resumes_from_query_parameter(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    before = [event(n=i) for i in range(3)]
    await publisher.publish_many(before)
    async with serve() as (base, _), httpx.AsyncClient(timeout=10) as client:
        url = f"{base}/events?last_event_id={before[0].event_id}"
        async with aconnect_sse(client, "GET", url, headers=auth()) as source:
            got = await take(source.aiter_sse(), 2)
    assert [s.id for s in got] == [str(e.event_id) for e in before[1:]]


async def test_stream_reset_when_last_id_is_no_longer_retained(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    old = event(n=0)
    await publisher.publish(old)
    await redis.delete(publisher.keys.user_stream(ALICE))  # retention expired / was reset
    later = event(n=1)
    await publisher.publish(later)
    resume = {**auth(), "Last-Event-ID": str(old.event_id)}
    async with (
        serve() as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=resume) as source,
    ):
        reset, replayed = await take(source.aiter_sse(), 2)
    assert reset.event == STREAM_RESET
    assert reset.id == ""  # the client's last id stays the last event it really got
    assert json.loads(reset.data) == {"reason": "resume", "after_event_id": str(old.event_id)}
    assert replayed.id == str(later.event_id)  # what is still retained follows the reset


async def test_resume_with_a_fully_retained_gap_sends_no_reset(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    events = [event(n=i) for i in range(2)]
    await publisher.publish_many(events)
    resume = {**auth(), "Last-Event-ID": str(events[0].event_id)}
    async with (
        serve() as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=resume) as source,
    ):
        [got] = await take(source.aiter_sse(), 1)
    assert got.event != STREAM_RESET
    assert got.id == str(events[1].event_id)


async def test_client_disconnect_releases_the_subscription_promptly(
    redis: Redis, serve: Serve
) -> None:
    # Heartbeats are far away: only on_connection_close can notice the client leaving.
    conf = sse_settings(heartbeat_seconds=3600)
    async with serve(settings=conf) as (base, endpoint):
        async with httpx.AsyncClient(timeout=10) as client:
            streams = [
                await client.send(
                    client.build_request("GET", f"{base}/events", headers=auth(u)), stream=True
                )
                for u in (ALICE, BOB, ALICE)
            ]
            await eventually(lambda: hub_subscriptions(redis) == 3, what="3 subscriptions")
            assert endpoint.active_streams == 3
            await streams[0].aclose()
        # The hub forgets a subscription first; the stream's own teardown ends a moment later.
        await eventually(
            lambda: hub_subscriptions(redis) == 0 and endpoint.active_streams == 0,
            within=5,
            what="release",
        )
        assert await channel_subscribers(redis, ALICE) == 0
        assert await channel_subscribers(redis, BOB) == 0


async def test_many_connections_share_one_pubsub_connection(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    async def pubsub_clients() -> int:
        return sum(1 for c in await redis.client_list() if int(c.get("sub", 0)) > 0)

    e = event(ALICE, n=1)
    async with (
        serve() as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=auth(ALICE)) as a1,
        aconnect_sse(client, "GET", f"{base}/events", headers=auth(ALICE)) as a2,
        aconnect_sse(client, "GET", f"{base}/events", headers=auth(BOB)),
    ):
        await live(redis, ALICE, count=3)
        await live(redis, BOB, count=3)
        assert await pubsub_clients() == 1
        await publisher.publish(e)
        got = [await take(s.aiter_sse(), 1) for s in (a1, a2)]
    assert [g[0].id for g in got] == [str(e.event_id)] * 2


async def test_response_ends_after_max_events_and_client_can_resume(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    events = [event(n=i) for i in range(5)]
    await publisher.publish_many(events)
    first = {**auth(), "Last-Event-ID": str(events[0].event_id)}
    async with (
        serve(max_events=2) as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=first) as source,
    ):
        part1 = [s async for s in source.aiter_sse() if s.data]
        again = {**auth(), "Last-Event-ID": part1[-1].id}
        async with aconnect_sse(client, "GET", f"{base}/events", headers=again) as source:
            part2 = [s async for s in source.aiter_sse() if s.data]
    assert [s.id for s in part1 + part2] == [str(e.event_id) for e in events[1:]]
    assert hub_subscriptions(redis) == 0


async def test_stream_ends_when_its_token_expires(redis: Redis, serve: Serve) -> None:
    short = TokenSigner(SECRET).mint(ALICE, ttl_seconds=2)  # whole seconds: valid for 1-2 s
    async with serve() as (base, _), httpx.AsyncClient(timeout=10) as client:
        headers = {"Authorization": f"Bearer {short}"}
        async with aconnect_sse(client, "GET", f"{base}/events", headers=headers) as source:
            messages = await asyncio.wait_for(_drain(source.aiter_sse()), 5)
        again = await client.get(f"{base}/events", headers=headers)
    assert [m.retry for m in messages] == [1500]
    assert again.status_code == 401
    assert hub_subscriptions(redis) == 0


async def _drain(source: AsyncIterator[ServerSentEvent]) -> list[ServerSentEvent]:
    return [s async for s in source]


def test_access_log_line_hides_query_tokens() -> None:
    assert redact_token("/events?categories=ai&token=v1.abc.def") == (
        "/events?categories=ai&token=***"
    )
    assert redact_token("/events?categories=ai") == "/events?categories=ai"


async def test_hostile_data_crosses_http_intact(
    redis: Redis, serve: Serve, publisher: RedisSSEPublisher
) -> None:
    nasty = "line1\r\nline2\rline3\n\x00 ünï 😀 \u2028 data: fake\n\nid: forged\n" + "x" * 100_000
    e = event(text=nasty, **{"key\nwith\rbreaks": "v"})
    async with (
        serve() as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=auth()) as source,
    ):
        await live(redis)
        await publisher.publish(e)
        [got] = await take(source.aiter_sse(), 1)
    assert as_received(got) == as_sent(e)
