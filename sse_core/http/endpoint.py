"""What every HTTP adapter of the SSE endpoint shares, built once per server.

One :class:`~sse_core.subscriber.RedisSSESubscriber` serves every connection (its streams are
independent; its stats are the endpoint's totals), so the whole endpoint holds one Redis pub/sub
connection however many clients are connected.

Without a usable ``SSE_TOKEN_SECRET`` the endpoint fails closed: every request is answered
``503`` with a JSON body saying why, and that is logged once (as information: serving only the
dashboard is a normal set-up) when the endpoint is built. The
dashboard next to it keeps working; no stream is ever served unauthenticated, and no secret is
ever invented (a generated one would silently change at each restart and in each process).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping, Sequence

from sse_core.connection import RedisClient
from sse_core.http.request import RequestRejected, StreamRequest, check_stream_request
from sse_core.http.sending import SendDeadline
from sse_core.http.stream import StreamOptions, WriteNow, event_stream
from sse_core.http.tokens import TokenSecretMissing, TokenSigner
from sse_core.settings import SSESettings
from sse_core.subscriber import RedisSSESubscriber

log = logging.getLogger(__name__)


class EventStreamEndpoint:
    """Checks requests and produces their streams; adapters only translate HTTP."""

    def __init__(
        self,
        redis_client: RedisClient,
        settings: SSESettings,
        *,
        signer: TokenSigner | None = None,
        max_events: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.subscriber = RedisSSESubscriber.from_settings(redis_client, settings)
        self.options = StreamOptions.from_settings(
            settings, max_events=max_events, max_seconds=max_seconds
        )
        self.disabled_reason: str | None = None
        if signer is None:
            try:
                signer = TokenSigner.from_settings(settings)
            except TokenSecretMissing as exc:
                self.disabled_reason = str(exc)
                log.info("GET /events answers 503 until a token secret is configured: %s", exc)
        self.signer = signer
        self.active_streams = 0

    def check(
        self,
        query: Mapping[str, Sequence[str]],
        *,
        authorization: str | None = None,
        last_event_id_header: str | None = None,
    ) -> StreamRequest:
        """The checked request, or :class:`RequestRejected` (401/403/400/503)."""
        if self.signer is None:
            raise RequestRejected(
                503, "endpoint_disabled", f"the event stream is disabled: {self.disabled_reason}"
            )
        return check_stream_request(
            self.signer,
            query,
            authorization=authorization,
            last_event_id_header=last_event_id_header,
        )

    def send_deadline(self, request: StreamRequest) -> SendDeadline:
        """How long each write of this request's stream may wait (send timeout, token expiry)."""
        return SendDeadline(self.options.send_timeout_seconds, request.expires_at)

    async def stream(
        self, request: StreamRequest, write_now: WriteNow | None = None
    ) -> AsyncGenerator[str, None]:
        """The connection's wire chunks; close or cancel the iteration when the client leaves.

        ``write_now``: the adapter's synchronous write, for the live fast path
        (:func:`~sse_core.http.stream.event_stream`).
        """
        self.active_streams += 1
        chunks = event_stream(self.subscriber, request, self.options, write_now)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            self.active_streams -= 1
            await chunks.aclose()
