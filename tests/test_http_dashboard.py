"""``GET /events`` on the real dashboard server (``ssewatch serve``), next to the dashboard."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from httpx_sse import aconnect_sse
from redis.asyncio import Redis

from sse_core import RedisSSEPublisher, SSEEvent, SSEEventType
from sse_core.http import TokenSigner
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer, free_port
from tests.support.sse_http import channel_subscribers, new_secret

pytestmark = pytest.mark.redis

USER = UUID("9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b")
SECRET = new_secret()
ROOT = Path(__file__).resolve().parents[1]


async def start_dashboard(
    redis_url: str, env_extra: dict[str, str], *flags: str
) -> tuple[str, asyncio.subprocess.Process]:
    port = free_port()
    env = {**os.environ, **env_extra, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "dashboard.cli", "serve", "--port", str(port)],
        *["--redis-url", redis_url, *flags],
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:

        async def up() -> bool:
            if proc.returncode is not None:
                raise AssertionError("ssewatch serve exited")
            try:
                await client.get(f"{base}/events")
            except httpx.TransportError:
                return False
            return True

        try:
            await eventually(up, within=60, what="ssewatch serve")
        except BaseException:
            proc.kill()
            raise
    return base, proc


@pytest.fixture
async def dashboard(redis_server: RedisServer) -> AsyncIterator[str]:
    env = {"SSE_TOKEN_SECRET": SECRET, "SSE_RETRY_MS": "500"}
    base, proc = await start_dashboard(redis_server.url, env)
    try:
        yield base
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def test_dashboard_server_serves_the_event_stream(
    dashboard: str, redis_server: RedisServer
) -> None:
    redis = Redis.from_url(redis_server.url)
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    events = [
        SSEEvent(event_type=SSEEventType.IMPORT_COMPLETED, user_id=USER, data={"rows": n})
        for n in range(4)
    ]
    token = TokenSigner(SECRET).mint(USER, 120)
    try:
        async with httpx.AsyncClient(timeout=60) as client:  # a first page: ~10 s when busy
            page = await client.get(f"{dashboard}/")
            anonymous = await client.get(f"{dashboard}/events")
            bad = await client.get(f"{dashboard}/events?categories=x&token={token}")
            await publisher.publish(events[0])
            resume = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(events[0].event_id)}
            await publisher.publish(events[1])  # missed: must be replayed
            url = f"{dashboard}/events?categories=import"
            async with aconnect_sse(client, "GET", url, headers=resume) as source:
                messages = source.aiter_sse()
                got = []
                async for sse in messages:
                    if sse.retry is not None:
                        assert sse.retry == 500
                        continue
                    got.append(sse.id)
                    if len(got) == 1:
                        await eventually(lambda: channel_subscribers(redis, USER), what="SUBSCRIBE")
                        await publisher.publish_many(events[2:])
                    if len(got) == 3:
                        break
    finally:
        await redis.aclose()
    assert page.status_code == 200  # the dashboard itself, same server
    assert "ssewatch" in page.text
    assert anonymous.status_code == 401
    assert bad.status_code == 400
    assert got == [str(e.event_id) for e in events[1:]]


async def test_serve_login_options_protect_dashboard_and_events(
    redis_server: RedisServer,
) -> None:
    env = {"SSE_TOKEN_SECRET": SECRET}
    flags = ("--basic-auth", "open-sesame", "--cookie-secret", "c" * 40)
    base, proc = await start_dashboard(redis_server.url, env, *flags)
    token = TokenSigner(SECRET).mint(USER, 120)
    try:
        async with httpx.AsyncClient(timeout=60) as client:  # a first page: ~10 s when busy
            page = await client.get(f"{base}/")
            events = await client.get(
                f"{base}/events", headers={"Authorization": f"Bearer {token}"}
            )
            login = await client.post(
                f"{base}/login", data={"username": "ops", "password": "open-sesame"}
            )
            after_login = await client.get(f"{base}/")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
    assert page.status_code == 302
    assert "/login" in page.headers["location"]
    assert events.status_code == 401
    assert events.json()["error"] == "login_required"
    assert login.status_code in (200, 302)
    assert after_login.status_code == 200
    assert "ssewatch" in after_login.text
