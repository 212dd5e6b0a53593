"""``GET /events`` as a Tornado handler, for the dashboard's server (Panel/Bokeh run Tornado).

Mount it with ``extra_patterns=event_routes(redis, settings)`` (Panel's ``pn.serve`` /
``get_server`` pass those to Tornado). Disconnects are noticed through
:meth:`~tornado.web.RequestHandler.on_connection_close` (Tornado watches the socket for EOF)
and through failing writes (heartbeats guarantee a write every ``heartbeat_seconds``).

When the server has a login configured (``--basic-auth``, ``--oauth-provider`` or an auth
module: Bokeh's ``application.auth_provider``), Tornado's extra routes are *not* protected by
it automatically; this handler asks the same provider and answers ``401`` (never a redirect to
a login page an ``EventSource`` cannot follow) when there is no logged-in user. The bearer token
is required in addition: the login says who may use the server, the token whose stream it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, StreamClosedError
from tornado.web import RequestHandler

from sse_core.connection import RedisClient
from sse_core.http.endpoint import EventStreamEndpoint
from sse_core.http.request import RequestRejected, StreamRequest, redact_token
from sse_core.http.sending import SendDeadline
from sse_core.http.stream import SSE_HEADERS
from sse_core.http.tokens import TokenSigner
from sse_core.http.tornado_server import answering_oversized_heads
from sse_core.settings import SSESettings

log = logging.getLogger(__name__)

Route = tuple[str, type[RequestHandler], dict[str, Any]]

__all__ = ["EventStreamHandler", "answering_oversized_heads", "event_routes"]


def event_routes(
    redis_client: RedisClient,
    settings: SSESettings,
    *,
    path: str = "/events",
    signer: TokenSigner | None = None,
    honour_server_auth: bool = True,
    max_events: int | None = None,
    max_seconds: float | None = None,
) -> list[Route]:
    """Tornado routes serving the SSE endpoint; all connections share one pub/sub connection.

    ``signer`` defaults to one built from ``SSE_TOKEN_SECRET`` (without it every request gets
    503, see :mod:`sse_core.http.endpoint`). ``max_events`` / ``max_seconds`` end each response
    early; clients reconnect and resume without loss.
    """
    endpoint = EventStreamEndpoint(
        redis_client, settings, signer=signer, max_events=max_events, max_seconds=max_seconds
    )
    options = {"endpoint": endpoint, "honour_server_auth": honour_server_auth}
    return [(path, EventStreamHandler, options)]


async def server_login(handler: RequestHandler) -> tuple[bool, Any]:
    """Whether the server has a login configured, and the user it sees on this request."""
    provider = getattr(handler.application, "auth_provider", None)
    if provider is None:
        return False, None
    get_user_async: Callable[[RequestHandler], Awaitable[Any]] | None = provider.get_user_async
    get_user: Callable[[RequestHandler], Any] | None = provider.get_user
    if get_user_async is not None:
        return True, await get_user_async(handler)
    if get_user is not None:
        return True, get_user(handler)
    return False, None  # Bokeh's NullAuth: no login configured


_last_frame: tuple[str, bool, bytes] = ("", False, b"")


def _frame(chunk: str, chunked: bool) -> bytes:
    """``chunk`` as the response's bytes; a broadcast's one chunk is framed once, not per client."""
    global _last_frame
    last = _last_frame
    if last[0] is chunk and last[1] is chunked:
        return last[2]
    data = chunk.encode()
    frame = b"%x\r\n%b\r\n" % (len(data), data) if chunked else data
    _last_frame = (chunk, chunked, frame)
    return frame


class EventStreamHandler(RequestHandler):
    """One SSE connection."""

    endpoint: EventStreamEndpoint
    honour_server_auth: bool

    def initialize(self, endpoint: EventStreamEndpoint, honour_server_auth: bool = True) -> None:
        self.endpoint = endpoint
        self.honour_server_auth = honour_server_auth
        self._pump: asyncio.Task[None] | None = None
        # The pump waits for a write, or has ended: the fast path must not write meanwhile.
        self._fast_path_held = False
        self._deadline: SendDeadline | None = None

    async def prepare(self) -> None:
        if not self.honour_server_auth:
            return
        configured, user = await server_login(self)
        if configured and not user:
            self._reject(
                RequestRejected(
                    401,
                    "login_required",
                    "this server requires a login: sign in to the dashboard first",
                )
            )

    async def get(self) -> None:
        query = {name: self.get_query_arguments(name) for name in self.request.query_arguments}
        try:
            request = self.endpoint.check(
                query,
                authorization=self.request.headers.get("Authorization"),
                last_event_id_header=self.request.headers.get("Last-Event-ID"),
            )
        except RequestRejected as rejected:
            self._reject(rejected)
            return
        for name, value in SSE_HEADERS.items():
            self.set_header(name, value)
        self._pump = asyncio.ensure_future(self._pump_stream(request))
        try:
            await asyncio.wait({self._pump})
        finally:
            if not self._pump.done():  # the server is shutting down
                self._pump.cancel()

    async def _pump_stream(self, request: StreamRequest) -> None:
        chunks = self.endpoint.stream(request, self._write_now)
        deadline = self._deadline = self.endpoint.send_deadline(request)
        stuck = False
        try:
            async for chunk in chunks:
                self.write(chunk)
                flushed = self.flush()
                if self._sent_at_once():
                    continue
                self._fast_path_held = True
                try:
                    if not await deadline.send(flushed):  # flush() alone waits forever
                        stuck = True
                        break
                finally:
                    self._fast_path_held = False
        except StreamClosedError:
            pass  # the client went away between two writes
        finally:
            self._fast_path_held = True
            await chunks.aclose()
            if stuck:
                self._log_stuck()
                self.detach().close()  # drops what the client never took

    def _log_stuck(self) -> None:
        log.info(
            "closing %s: it took no data within the send timeout (%.1f s) or the token's lifetime",
            self._request_summary(),
            self._deadline.timeout if self._deadline is not None else math.nan,
        )

    def _sent_at_once(self) -> bool:
        """The socket took the whole write: nothing to wait for, so no deadline to arm.

        Tornado's stream writes at once when its buffer is empty, but its flush future
        resolves only a few loop iterations later; waiting on it under the deadline (a timer
        and a waiter per write) was most of a fanned-out broadcast's per-connection cost. A
        write that had to be buffered (the client is slow) still waits under the deadline.
        """
        connection = self.request.connection
        if not isinstance(connection, HTTP1Connection):
            return False
        stream = connection.stream
        return not stream.writing() and not stream.closed()

    def _write_now(self, chunk: str) -> bool:
        """The live fast path's write: straight onto an idle plain socket, or not at all.

        It goes under Tornado's stream (framing the chunk as Tornado would) because Tornado's
        own write allocates futures and callbacks per write that outlive the hand-over of a
        broadcast to every connection: the garbage collector then promoted tens of thousands
        of them per broadcast and its full passes, over every connection's objects, took a
        second each with 10,000 connections. A bytes object is all this allocates. Only on an
        idle stream (nothing buffered, so order holds), never while the pump waits for a write
        or after it ended, and never when Tornado transforms the output (gzip). What the socket
        does not take goes to Tornado's buffer under the send deadline, and the next chunk
        finds the stream busy and goes through the pump.
        """
        connection = self.request.connection
        if self._fast_path_held or self._transforms or not isinstance(connection, HTTP1Connection):
            return False
        stream = connection.stream
        chunked = getattr(connection, "_chunking_output", None)
        if type(stream) is not IOStream or stream.writing() or stream.closed():
            return False
        if not isinstance(chunked, bool):  # a Tornado that frames differently: no fast path
            return False
        frame = _frame(chunk, chunked)
        try:
            sent = stream.socket.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError:  # the client is gone: the pump's write finds out and ends the stream
            return False
        if sent < len(frame):
            self._write_rest(stream, frame[sent:])
        return True

    def _write_rest(self, stream: IOStream, rest: bytes) -> None:
        """Buffer what the socket did not take; the client gets the send deadline to take it.

        The chunk is partly on the wire, so from here it can only be finished or the connection
        closed: sending it again through the pump would corrupt the stream.
        """
        try:
            written = stream.write(rest)
        except Exception:
            stream.close()
            return
        budget = self._deadline.budget() if self._deadline is not None else 0.0
        timer = asyncio.get_running_loop().call_later(budget, self._give_up, stream, written)
        written.add_done_callback(lambda _: timer.cancel())

    def _give_up(self, stream: IOStream, written: asyncio.Future[None]) -> None:
        if not written.done() and not stream.closed():
            self._log_stuck()
            stream.close()  # drops what the client never took; the pump then ends

    def on_connection_close(self) -> None:
        """The client went away: cancel the stream now rather than at the next heartbeat."""
        super().on_connection_close()
        if self._pump is not None:
            self._pump.cancel()

    def _reject(self, rejected: RequestRejected) -> None:
        self.set_status(rejected.status)
        for name, value in rejected.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(rejected.body()))

    def _request_summary(self) -> str:
        """The access-log line, without the ``?token=`` credential."""
        uri = redact_token(self.request.uri or "")
        return f"{self.request.method} {uri} ({self.request.remote_ip})"
