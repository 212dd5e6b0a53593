"""``/events`` mounted in a real Panel server with ``--basic-auth``: the login is honoured.

Tornado's ``extra_patterns`` are not covered by Panel's login by themselves; the handler asks the
server's auth provider. The Panel server runs in its own process: ``pn.serve(basic_auth=...)``
sets process-wide Panel configuration that must not leak into other tests.
"""

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

USER = UUID("e1d2c3b4-a5f6-4789-8a9b-0c1d2e3f4a5b")
SECRET = new_secret()
PASSWORD = "let-me-in-please"
ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import sys
import panel as pn
from sse_core import SSESettings, connect
from sse_core.http.tornado import event_routes

port, redis_url, secret, password = sys.argv[1:5]
settings = SSESettings(redis_url=redis_url, token_secret=secret)
redis = connect(redis_url)
routes = [
    *event_routes(redis, settings),
    *event_routes(redis, settings, path="/open-events", honour_server_auth=False),
]
pn.serve(
    {"/": lambda: pn.pane.Markdown("dashboard")},
    port=int(port), address="127.0.0.1", websocket_origin=[f"127.0.0.1:{port}"],
    show=False, basic_auth=password, cookie_secret="c" * 40, extra_patterns=routes,
)
"""


@pytest.fixture
async def panel_server(redis_server: RedisServer) -> AsyncIterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", SERVER, str(port), redis_server.url, SECRET, PASSWORD],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:

            async def up() -> bool:
                if proc.returncode is not None:
                    raise AssertionError("the Panel server exited")
                try:
                    await client.get(f"{base}/login")
                except httpx.TransportError:
                    return False
                return True

            await eventually(up, within=60, what="Panel server")
        yield base
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TokenSigner(SECRET).mint(USER, 300)}"}


async def login(client: httpx.AsyncClient, base: str, password: str) -> None:
    await client.post(f"{base}/login", data={"username": "ops", "password": password})


async def test_events_need_the_dashboard_login_as_well_as_a_token(
    panel_server: str, redis_server: RedisServer
) -> None:
    base = panel_server
    async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
        dashboard = await client.get(f"{base}/")
        anonymous = await client.get(f"{base}/events", headers=bearer())
        await login(client, base, "wrong password")
        wrong = await client.get(f"{base}/events", headers=bearer())
        await login(client, base, PASSWORD)
        no_token = await client.get(f"{base}/events")
    assert dashboard.status_code == 302  # the server really has a login
    assert "/login" in dashboard.headers["location"]
    for refused in (anonymous, wrong):
        assert refused.status_code == 401  # a JSON 401, not a redirect EventSource can't use
        assert refused.json()["error"] == "login_required"
    assert no_token.status_code == 401
    assert no_token.json()["error"] == "token_missing"


async def test_logged_in_client_with_token_gets_its_events(
    panel_server: str, redis_server: RedisServer
) -> None:
    redis = Redis.from_url(redis_server.url)
    publisher = RedisSSEPublisher(redis, enable_retention=True)
    e = SSEEvent(event_type=SSEEventType.SECURITY_SESSION_NEW, user_id=USER, data={"ip": "::1"})
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await login(client, panel_server, PASSWORD)
            url = f"{panel_server}/events"
            async with aconnect_sse(client, "GET", url, headers=bearer()) as source:
                await eventually(lambda: channel_subscribers(redis, USER), what="SUBSCRIBE")
                await publisher.publish(e)
                async for sse in source.aiter_sse():
                    if sse.data:
                        break
        assert sse.id == str(e.event_id)
    finally:
        await redis.aclose()


async def test_opting_out_leaves_only_the_token(panel_server: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        url = f"{panel_server}/open-events"
        async with client.stream("GET", url, headers=bearer()) as response:
            status = response.status_code
        unauthenticated = await client.get(url)
    assert status == 200
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"] == "token_missing"
