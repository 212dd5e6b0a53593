"""A Tornado ``HTTPServer`` that answers ``431`` to a request head it will not read.

Tornado reads a request's start line and headers with a size cap (``max_header_size``,
64 KiB by default) and, past it, closes the socket without a word: the client sees a reset or
an empty reply and cannot tell "too large" from "server down". :class:`HeaderLimitHTTPServer`
sends ``431 Request Header Fields Too Large`` (RFC 6585) with a JSON body first, for every
route of the server (the dashboard's pages as well as ``GET /events``).

The dashboard's server is built by Bokeh (``pn.serve``), which constructs its own
``HTTPServer``; :func:`answering_oversized_heads` makes it build this one instead.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Awaitable, Iterator
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, UnsatisfiableReadError

DISCARD_LIMIT = 16 * 1024 * 1024  # input already received that is read away before closing
TOO_LARGE_BODY = json.dumps(
    {
        "error": "headers_too_large",
        "detail": "the request's start line and headers are larger than this server reads",
    }
).encode()
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Type: application/json\r\n"
    b"Cache-Control: no-store\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(TOO_LARGE_BODY)).encode() + b"\r\n\r\n" + TOO_LARGE_BODY
)


class _HeadLimitStream(IOStream):
    """Tells the client why before closing, when a request head outgrew the read limit.

    Tornado's HTTP/1 server reads each request head with ``read_until_regex`` (and nothing
    else with it); that read failing with ``UnsatisfiableReadError`` is the "too large" case.
    """

    _reading_head = False

    def read_until_regex(self, regex: bytes, max_bytes: int | None = None) -> Awaitable[bytes]:
        self._reading_head = True  # before the read: it can fail inline
        future = super().read_until_regex(regex, max_bytes)
        future.add_done_callback(self._head_read)  # type: ignore[attr-defined]
        return future

    def _head_read(self, _future: object) -> None:
        self._reading_head = False

    def close_fd(self) -> None:
        if (
            self._reading_head
            and isinstance(self.error, UnsatisfiableReadError)
            and not self.writing()
        ):
            with contextlib.suppress(OSError):  # best effort: the socket is closing anyway
                self.socket.send(TOO_LARGE)
                self.socket.shutdown(socket.SHUT_WR)
                self._discard_unread()
        super().close_fd()

    def _discard_unread(self) -> None:
        """Read (without waiting) what the client already sent: closing a socket with unread
        input sends a reset, and the client would lose the 431 before reading it."""
        for _ in range(DISCARD_LIMIT // 65536):
            try:
                if not self.socket.recv(65536):
                    return
            except BlockingIOError:
                return


class HeaderLimitHTTPServer(HTTPServer):
    """``HTTPServer`` whose plain-TCP connections answer 431 to oversized request heads."""

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        if type(stream) is IOStream:  # TLS streams keep Tornado's own behaviour
            stream = _HeadLimitStream(
                stream.socket,
                max_buffer_size=stream.max_buffer_size,
                read_chunk_size=stream.read_chunk_size,
                max_write_buffer_size=stream.max_write_buffer_size,
            )
        super().handle_stream(stream, address)


@contextlib.contextmanager
def answering_oversized_heads() -> Iterator[None]:
    """Servers built inside (``pn.serve``, Bokeh's ``Server``) are :class:`HeaderLimitHTTPServer`.

    ``HTTPServer`` is a Tornado ``Configurable``; the previous implementation is restored on
    exit, so servers built elsewhere in the process are unaffected.
    """
    previous = HTTPServer.configured_class()
    HTTPServer.configure(HeaderLimitHTTPServer)
    try:
        yield
    finally:
        HTTPServer.configure(previous)
