"""What only the ASGI adapter has: the Starlette route builder, and the runnable example
(examples/asgi_app.py) as a subprocess, real Redis. The endpoint's rules run on this adapter
too, in tests/test_http_endpoint.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from httpx_sse import aconnect_sse
from redis.asyncio import Redis
from starlette.applications import Starlette

from dashboard.demo import DEMO_USERS
from sse_core import SSEEvent, SSESettings
from sse_core.http import TokenSigner
from sse_core.http.asgi import event_route
from tests.support.http_adapters import uvicorn_app
from tests.support.polling import eventually
from tests.support.redis_server import free_port
from tests.support.sse_http import new_secret

pytestmark = pytest.mark.redis

ALICE = UUID("0b7e2f4c-6a1d-4e3b-9c5f-8d2a1b0c9e01")
SECRET = new_secret()
ROOT = Path(__file__).resolve().parents[1]


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TokenSigner(SECRET).mint(ALICE, 300)}"}


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
