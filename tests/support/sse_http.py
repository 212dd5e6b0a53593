"""Helpers for the SSE endpoint tests: a real Tornado server on loopback, polling with a deadline.

The server runs on the test's own event loop, so the test can look at the same
:class:`~sse_core.hub.SubscriptionHub` the handlers use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from httpx_sse import ServerSentEvent
from redis.asyncio import Redis
from tornado.httpserver import HTTPServer
from tornado.web import Application

from sse_core.cluster_hub import hub_for
from sse_core.connection import RedisClient
from sse_core.events import SSEEvent
from sse_core.keys import SSEChannelKeys


def new_secret() -> str:
    return secrets.token_urlsafe(32)


WireEvent = tuple[str, str, Any]  # (id, event name, parsed data): what a browser sees


def as_sent(event: SSEEvent) -> WireEvent:
    """What a client must receive for ``event``: its id, its type, and only its payload."""
    return str(event.event_id), event.event_type.value, event.data


def as_received(sse: ServerSentEvent) -> WireEvent:
    """A received message as a browser's handler sees it (``lastEventId``, name, ``JSON.parse``)."""
    return sse.id or "", sse.event, json.loads(sse.data)


@asynccontextmanager
async def tornado_server(routes: list[Any], **app_settings: Any) -> AsyncIterator[str]:
    """Serve ``routes`` on a free loopback port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    server = HTTPServer(Application(routes, **app_settings))
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.stop()
        await asyncio.wait_for(server.close_all_connections(), 10)


def hub_subscriptions(redis: RedisClient) -> int:
    """Subscriptions the process-wide hub holds for ``redis`` (the endpoint's share of it)."""
    return hub_for(redis).status().subscriptions


async def channel_subscribers(redis: Redis, user_id: UUID, prefix: str = "sse") -> int:
    """``PUBSUB NUMSUB`` of the user's channel, as the Redis server sees it."""
    channel = SSEChannelKeys(prefix).user_channel(user_id)
    counts = dict(await redis.pubsub_numsub(channel))
    return int(counts.get(channel.encode(), counts.get(channel, 0)))


async def open_read_first_chunk_close(base: str, path: str) -> bytes:
    """A client that reads the first chunk of a response, then closes (a fast disconnect)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 10)  # the first chunk, then go
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
