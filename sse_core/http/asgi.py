"""``GET /events`` for ASGI apps (Starlette, FastAPI), over the same framework-free core.

::

    endpoint_route = event_route(redis, SSESettings())      # a starlette.routing.Route
    app = Starlette(routes=[endpoint_route])                # or: fastapi_app.router.routes.append

The response watches for ``http.disconnect`` while it streams, whatever ASGI spec version the
server speaks (Starlette's own ``StreamingResponse`` stops listening from spec 2.4 on and then
only notices a gone client at its next write), and cancels the stream exactly once, so the
stream's cleanup (closing the subscription) runs to completion. asyncio servers only, which is
what the Redis client needs anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sse_core.connection import RedisClient
from sse_core.http.endpoint import EventStreamEndpoint
from sse_core.http.request import RequestRejected
from sse_core.http.sending import SendDeadline
from sse_core.http.stream import SSE_HEADERS
from sse_core.http.tokens import TokenSigner
from sse_core.settings import SSESettings

log = logging.getLogger(__name__)


class EventStreamResponse(Response):
    """Streams wire chunks; stops (and closes the chunks) as soon as the client disconnects."""

    def __init__(
        self, chunks: AsyncGenerator[str, None], deadline: SendDeadline | None = None
    ) -> None:
        self.chunks = chunks
        self.deadline = deadline or SendDeadline(30.0)
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)

    async def _pump(self, send: Send) -> None:
        try:
            async for chunk in self.chunks:
                body = {"type": "http.response.body", "body": chunk.encode(), "more_body": True}
                if not await self.deadline.send(send(body)):
                    # Ending without completing the response makes the server close the
                    # connection (uvicorn logs that it was incomplete); our side is freed now.
                    log.info(
                        "closing an SSE client: it took no data within the send timeout "
                        "(%.1f s) or the token's lifetime",
                        self.deadline.timeout,
                    )
                    return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away between two writes (ASGI 2.4 servers raise here)
        finally:
            await self.chunks.aclose()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def event_stream_view(endpoint: EventStreamEndpoint) -> Callable[[Request], Awaitable[Response]]:
    """The request handler: checks first (JSON 4xx/503), then the stream."""

    async def events(request: Request) -> Response:
        query = {name: request.query_params.getlist(name) for name in request.query_params}
        try:
            checked = endpoint.check(
                query,
                authorization=request.headers.get("authorization"),
                last_event_id_header=request.headers.get("last-event-id"),
            )
        except RequestRejected as rejected:
            headers = {**rejected.headers, "Cache-Control": "no-store"}
            return JSONResponse(rejected.body(), rejected.status, headers=headers)
        return EventStreamResponse(endpoint.stream(checked), endpoint.send_deadline(checked))

    return events


def event_route(
    redis_client: RedisClient,
    settings: SSESettings,
    *,
    path: str = "/events",
    signer: TokenSigner | None = None,
    max_events: int | None = None,
    max_seconds: float | None = None,
) -> Route:
    """A Starlette route for the endpoint (same options as the Tornado ``event_routes``).

    To keep a handle on the endpoint (its ``subscriber.stats``, ``active_streams``), build an
    :class:`EventStreamEndpoint` yourself and route to :func:`event_stream_view` instead.
    """
    endpoint = EventStreamEndpoint(
        redis_client, settings, signer=signer, max_events=max_events, max_seconds=max_seconds
    )
    return Route(path, event_stream_view(endpoint), methods=["GET"], name="events")
