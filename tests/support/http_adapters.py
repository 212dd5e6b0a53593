"""``GET /events`` served by each adapter on a free loopback port: Tornado, and ASGI (Starlette)
under uvicorn.

Endpoint rules live in :class:`~sse_core.http.EventStreamEndpoint` and the adapters only translate
HTTP, so one test body checks a rule on every adapter. Both servers run on the test's own event
loop: the test sees the same :class:`~sse_core.hub.SubscriptionHub` the handlers use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import Route

from sse_core import SSESettings
from sse_core.http import EventStreamEndpoint
from sse_core.http.asgi import event_stream_view
from sse_core.http.tornado import event_routes
from tests.support.polling import eventually
from tests.support.redis_server import free_port
from tests.support.sse_http import tornado_server

Adapter = Literal["tornado", "asgi"]
ADAPTERS: tuple[Adapter, ...] = ("tornado", "asgi")


@asynccontextmanager
async def uvicorn_app(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI ``app`` with uvicorn on a free loopback port; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), what="uvicorn start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # Close what is still open instead of waiting for it (as Tornado's close_all_connections
        # does): a client that stopped reading never ends its response.
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 15)


@asynccontextmanager
async def serve_endpoint(
    adapter: Adapter,
    redis: Redis,
    settings: SSESettings,
    *,
    max_events: int | None = None,
    max_seconds: float | None = None,
) -> AsyncIterator[tuple[str, EventStreamEndpoint]]:
    """``GET /events`` through ``adapter``; yields the base URL and the endpoint behind it."""
    if adapter == "tornado":
        routes = event_routes(redis, settings, max_events=max_events, max_seconds=max_seconds)
        async with tornado_server(routes) as base:
            yield base, routes[0][2]["endpoint"]
        return
    endpoint = EventStreamEndpoint(redis, settings, max_events=max_events, max_seconds=max_seconds)
    app = Starlette(routes=[Route("/events", event_stream_view(endpoint), methods=["GET"])])
    async with uvicorn_app(app) as base:
        yield base, endpoint
