"""The SSE HTTP endpoint: tokens, request checks and the wire stream, framework-free.

Adapters live in submodules so importing this package pulls in no web framework:
:mod:`sse_core.http.tornado` (``event_routes`` for the dashboard's Panel/Tornado server) and
:mod:`sse_core.http.asgi` (Starlette/FastAPI).
"""

from sse_core.http.endpoint import EventStreamEndpoint
from sse_core.http.request import RequestRejected, StreamRequest, check_stream_request
from sse_core.http.stream import (
    SSE_HEADERS,
    STREAM_RESET,
    StreamOptions,
    event_stream,
    render_stream,
    stream_reset_message,
)
from sse_core.http.tokens import StreamToken, TokenError, TokenSecretMissing, TokenSigner

__all__ = [
    "SSE_HEADERS",
    "STREAM_RESET",
    "EventStreamEndpoint",
    "RequestRejected",
    "StreamOptions",
    "StreamRequest",
    "StreamToken",
    "TokenError",
    "TokenSecretMissing",
    "TokenSigner",
    "check_stream_request",
    "event_stream",
    "render_stream",
    "stream_reset_message",
]
