"""A raw-socket SSE client that stops reading, for tests and the stuck-clients benchmark.

Its receive buffer is made small *before* connecting (the window it advertises is set at the
handshake), so a server writing to it fills the kernel buffers after a few hundred kilobytes
and its writes then wait, exactly like a frozen browser tab or a stalled proxy.
"""

from __future__ import annotations

import asyncio
import socket

SMALL_RCVBUF = 2048


def events_request(port: int, token: str, query: str = "") -> bytes:
    return (
        f"GET /events{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Accept: text/event-stream\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


async def stuck_client(port: int, request: bytes, rcvbuf: int = SMALL_RCVBUF) -> socket.socket:
    """Connect, send ``request``, and never read (until :func:`read_to_eof`)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, request)
    return sock


async def read_to_eof(sock: socket.socket, within: float) -> bytes:
    """Everything the server sent until it closed; ``TimeoutError`` if it never closes."""
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []

    async def run() -> None:
        while True:
            try:
                chunk = await loop.sock_recv(sock, 65536)
            except ConnectionResetError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    await asyncio.wait_for(run(), within)
    return b"".join(chunks)
