"""The ASGI adapter on a real uvicorn server (and the runnable example), real Redis."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn
from httpx_sse import aconnect_sse
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import Route

from dashboard.demo import DEMO_USERS
from sse_core import RedisSSEPublisher, SSEEvent, SSEEventType, SSESettings
from sse_core.http import STREAM_RESET, EventStreamEndpoint, TokenSigner
from sse_core.http.asgi import event_route, event_stream_view
from tests.support.polling import eventually
from tests.support.redis_server import free_port
from tests.support.sse_http import channel_subscribers, hub_subscriptions, new_secret

pytestmark = pytest.mark.redis

ALICE = UUID("0b7e2f4c-6a1d-4e3b-9c5f-8d2a1b0c9e01")
SECRET = new_secret()
ROOT = Path(__file__).resolve().parents[1]


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TokenSigner(SECRET).mint(ALICE, 300)}"}


@asynccontextmanager
async def uvicorn_app(app: Any) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), what="uvicorn start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def serve(redis: Redis, **settings: Any) -> AsyncIterator[tuple[str, EventStreamEndpoint]]:
    conf = SSESettings(token_secret=SECRET, retry_ms=700, **settings)
    endpoint = EventStreamEndpoint(redis, conf)
    app = Starlette(routes=[Route("/events", event_stream_view(endpoint))])
    async with uvicorn_app(app) as base:
        yield base, endpoint


def event(n: int) -> SSEEvent:
    return SSEEvent(event_type=SSEEventType.IMPORT_PROGRESS, user_id=ALICE, data={"n": n})


async def test_events_are_streamed_with_sse_headers(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    events = [event(n) for n in range(3)]
    async with (
        serve(redis) as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=auth()) as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["cache-control"] == "no-cache"
        assert source.response.headers["x-accel-buffering"] == "no"
        await eventually(lambda: channel_subscribers(redis, ALICE), what="SUBSCRIBE")
        await publisher.publish_many(events)
        got = []
        async for sse in source.aiter_sse():
            if sse.retry is not None:
                assert sse.retry == 700
            elif sse.data:
                got.append(sse.id)
                if len(got) == 3:
                    break
    assert got == [str(e.event_id) for e in events]


async def test_rejections_are_json_before_streaming(redis: Redis) -> None:
    async with serve(redis) as (base, _), httpx.AsyncClient(timeout=10) as client:
        unauthenticated = await client.get(f"{base}/events")
        bad_category = await client.get(f"{base}/events?categories=nope", headers=auth())
        other_user = await client.get(f"{base}/events?user={UUID(int=1)}", headers=auth())
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert bad_category.status_code == 400
    assert bad_category.json()["parameter"] == "categories"
    assert "valid categories are" in bad_category.json()["detail"]
    assert other_user.status_code == 403


async def test_resume_after_a_trimmed_gap_says_stream_reset(redis: Redis) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    lost, kept = event(0), event(1)
    await publisher.publish(lost)
    await redis.delete(publisher.keys.user_stream(ALICE))
    await publisher.publish(kept)
    headers = {**auth(), "Last-Event-ID": str(lost.event_id)}
    async with (
        serve(redis) as (base, _),
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{base}/events", headers=headers) as source,
    ):
        got = []
        async for sse in source.aiter_sse():
            if sse.data:
                got.append((sse.event, sse.id))
                if len(got) == 2:
                    break
    assert got == [(STREAM_RESET, ""), (kept.event_type.value, str(kept.event_id))]


async def test_disconnect_releases_the_subscription_without_waiting_for_a_write(
    redis: Redis,
) -> None:
    async with serve(redis, heartbeat_seconds=3600) as (base, endpoint):
        async with httpx.AsyncClient(timeout=10) as client:
            request = client.build_request("GET", f"{base}/events", headers=auth())
            response = await client.send(request, stream=True)
            await eventually(lambda: hub_subscriptions(redis) == 1, what="subscription")
            await response.aclose()
        await eventually(lambda: hub_subscriptions(redis) == 0, within=5, what="release")
        assert endpoint.active_streams == 0
        assert await channel_subscribers(redis, ALICE) == 0


async def test_event_route_builds_a_working_route(redis: Redis) -> None:
    route = event_route(redis, SSESettings(token_secret=None), path="/stream")
    async with uvicorn_app(Starlette(routes=[route])) as base, httpx.AsyncClient() as client:
        response = await client.get(f"{base}/stream", headers=auth())
    assert response.status_code == 503  # no secret configured: fail closed
    assert "SSE_TOKEN_SECRET" in response.json()["detail"]


async def test_the_documented_example_runs_and_streams_demo_events() -> None:
    port = free_port()
    # The opt-in envelope puts the user on the wire, so the test can check whose events come.
    env = {
        **os.environ,
        "SSE_TOKEN_SECRET": SECRET,
        "SSE_EVENT_ENVELOPE": "true",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("SSE_REDIS_URL", None)
    example = ROOT / "examples" / "asgi_app.py"
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, str(example), "--port", str(port), "--rate", "50"],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        token = TokenSigner(SECRET).mint(DEMO_USERS["alice"], 60)
        url = f"http://127.0.0.1:{port}/events?token={token}"
        async with httpx.AsyncClient(timeout=10) as client:

            async def up() -> bool:
                try:
                    return (await client.get(f"http://127.0.0.1:{port}/nope")).status_code == 404
                except httpx.TransportError:
                    return proc.returncode is not None

            await eventually(up, within=20, what="example server")
            assert proc.returncode is None, "the example exited early"
            async with aconnect_sse(client, "GET", url) as source:
                async for sse in source.aiter_sse():
                    if sse.data:
                        user = SSEEvent.model_validate_json(sse.data).user_id
                        break
        assert user in (DEMO_USERS["alice"], UUID(int=0))  # alice's own or a broadcast
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
