"""The wire stream of one SSE connection, independent of any web framework.

``retry:`` hint first, then (when resuming) the replayed events, then live events, with a
``: ping`` comment whenever the connection has been quiet for ``heartbeat_seconds`` (so proxies
keep it open and a dead client is noticed at the next write), and an ``event: stream-reset``
wherever the subscriber could not prove that nothing was missed. All formatting is
:mod:`sse_core.wire`.

An adapter iterates :func:`render_stream` and writes each chunk; when the client goes away it
closes (or cancels) the iteration, which closes the subscription and releases its share of the
Redis pub/sub connection.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from sse_core.events import SSEEvent
from sse_core.http.request import StreamRequest
from sse_core.settings import SSESettings
from sse_core.subscriber import RedisSSESubscriber, StreamGap
from sse_core.wire import format_comment, format_event, format_retry

STREAM_RESET = "stream-reset"
HEARTBEAT = "ping"

SSE_HEADERS: dict[str, str] = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass chunks through instead of buffering the response
}


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How one connection's stream is paced and bounded.

    ``max_events`` / ``max_seconds`` end the response early (the client then reconnects with
    ``Last-Event-ID`` and loses nothing): useful to rebalance long-lived connections, and how
    the tests make a browser reconnect. ``envelope`` puts the whole event on ``data:`` instead
    of its payload (``SSE_EVENT_ENVELOPE``; off by default, as in the seed application).
    """

    retry_ms: int = 3000
    heartbeat_seconds: float = 15.0
    max_events: int | None = None
    max_seconds: float | None = None
    envelope: bool = False
    send_timeout_seconds: float = 30.0  # a write waiting longer closes the connection

    @classmethod
    def from_settings(
        cls,
        settings: SSESettings,
        *,
        max_events: int | None = None,
        max_seconds: float | None = None,
    ) -> StreamOptions:
        return cls(
            settings.retry_ms,
            settings.heartbeat_seconds,
            max_events,
            max_seconds,
            envelope=settings.event_envelope,
            send_timeout_seconds=settings.send_timeout_seconds,
        )


def stream_reset_message(gap: StreamGap) -> str:
    """Tell the client events may be missing after ``after_event_id``: reload, then go on.

    It carries no ``id:`` so the client's last event id stays the last event it really got.
    """
    after = str(gap.after_event_id) if gap.after_event_id is not None else None
    return format_event(
        json.dumps({"reason": gap.reason, "after_event_id": after}), event=STREAM_RESET
    )


class _LastWire:
    """The wire form of the last event formatted, by identity.

    The hub decodes a message once and hands the same immutable event object to every
    interested connection, so a broadcast to N connections is formatted once instead of N
    times. The (event, wire) pair is swapped as one tuple, so readers never see a torn pair.
    """

    def __init__(self) -> None:
        self._last: tuple[SSEEvent, bool, str] | None = None

    def format(self, event: SSEEvent, envelope: bool = False) -> str:
        last = self._last
        if last is not None and last[0] is event and last[1] is envelope:
            return last[2]
        wire = event.to_sse_format(envelope=envelope)
        self._last = (event, envelope, wire)
        return wire


_wire = _LastWire()


class _Exhausted:
    """Marks the end of the source (a future cannot carry ``StopAsyncIteration``)."""


_END = _Exhausted()


async def _next(items: AsyncIterator[SSEEvent | StreamGap]) -> SSEEvent | StreamGap | _Exhausted:
    try:
        return await anext(items)
    except StopAsyncIteration:
        return _END


WriteNow = Callable[[str], bool]
"""An adapter's synchronous write: ``True`` if the connection took the chunk without waiting
(nothing of its own queued, nothing being flushed), ``False`` (and nothing written) if not."""


class _StreamState:
    """One connection's bounds and counters, shared by its render loop and its fast path.

    The fast path (:meth:`offer`, given to :meth:`RedisSSESubscriber.stream` as its ``sink``)
    writes a live event straight from the shared reader's hand-over while the loop waits: no
    task wakes, no generator resumes, nothing outlives the write. With 10,000 connections that
    per-event machinery (a task, its coroutine, three generator frames' awaitables, futures)
    was most of a broadcast's time, and the garbage collector's full passes over it the rest.
    """

    __slots__ = (
        "end",
        "expires_at",
        "limit",
        "loop",
        "options",
        "quiet_at",
        "sent",
        "write_now",
    )

    def __init__(
        self,
        options: StreamOptions,
        expires_at: float | None = None,
        write_now: WriteNow | None = None,
    ) -> None:
        self.options = options
        self.expires_at = expires_at
        self.write_now = write_now
        self.limit = options.max_events if options.max_events is not None else math.inf
        self.sent = 0
        self.end = math.inf  # loop time at which the stream ends; set by start()
        self.quiet_at = math.inf  # loop time at which the current wait is answered by a heartbeat
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> asyncio.AbstractEventLoop:
        """Start the clocks (when the stream starts, not when it is built)."""
        loop = self.loop = asyncio.get_running_loop()
        ends = [math.inf]
        if self.options.max_seconds is not None:
            ends.append(loop.time() + self.options.max_seconds)
        if self.expires_at is not None:
            ends.append(loop.time() + (self.expires_at - time.time()))
        self.end = min(ends)
        return loop

    def quiet_from(self, now: float) -> None:
        # Never earlier than before (now only grows, end is fixed), so an armed timer is
        # never late.
        self.quiet_at = min(now + self.options.heartbeat_seconds, self.end)

    def offer(self, event: SSEEvent) -> bool:
        """Write ``event`` now if the adapter can; ``False`` leaves it to the loop, in order.

        Also refused: the event that ends a ``max_events`` stream and anything at or past the
        end, so the loop is the one that sees the stream end.
        """
        if self.write_now is None or self.loop is None or self.sent + 1 >= self.limit:
            return False
        now = self.loop.time()
        if now >= self.end or not self.write_now(_wire.format(event, self.options.envelope)):
            return False
        self.sent += 1
        self.quiet_from(now)
        return True


def render_stream(
    items: AsyncIterator[SSEEvent | StreamGap],
    options: StreamOptions,
    *,
    expires_at: float | None = None,
) -> AsyncGenerator[str, None]:
    """Wire chunks for ``items`` (a :meth:`RedisSSESubscriber.stream`), with heartbeats.

    Ends after ``options.max_events`` events, ``options.max_seconds``, or at ``expires_at``
    (unix seconds: the token's expiry, so a stream never outlives its credential). ``items`` is
    closed however this generator ends.
    """
    return _render(items, _StreamState(options, expires_at))


async def _render(
    items: AsyncIterator[SSEEvent | StreamGap], state: _StreamState
) -> AsyncGenerator[str, None]:
    """:func:`render_stream`, with ``state`` shared with the fast path ``items`` may have.

    The next item is awaited as a task that survives heartbeat timeouts: timing out must not
    cancel the subscriber mid-read (that would end its subscription). The heartbeat is one
    timer per connection that an event only moves, never re-creates: re-arming a timer (and
    ``asyncio.wait``'s waiter and sets) per event was, with 10,000 connections, a large share
    of a broadcast's time and of the garbage the collector then had to walk.
    """
    options = state.options
    loop = state.start()
    pending: asyncio.Task[SSEEvent | StreamGap | _Exhausted] | None = None
    waiter: asyncio.Future[None] | None = None
    timer: asyncio.TimerHandle | None = None

    def wake(_: object = None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_timer() -> None:
        nonlocal timer
        if timer is not None and timer.when() >= state.quiet_at:
            timer = None
            wake()
        else:  # events came meanwhile: the quiet period now ends later
            timer = loop.call_at(state.quiet_at, on_timer)

    try:
        yield format_retry(options.retry_ms)
        while state.sent < state.limit:
            if loop.time() >= state.end:
                return
            if pending is None:
                pending = asyncio.ensure_future(_next(items))
                pending.add_done_callback(wake)
            state.quiet_from(loop.time())
            if not pending.done():
                if timer is None:
                    timer = loop.call_at(state.quiet_at, on_timer)
                waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    waiter = None
            if not pending.done():
                if loop.time() < state.end:
                    yield format_comment(HEARTBEAT)
                continue
            item, pending = pending.result(), None
            if isinstance(item, _Exhausted):
                return
            if isinstance(item, StreamGap):
                yield stream_reset_message(item)
            else:
                state.sent += 1
                yield _wire.format(item, options.envelope)
    finally:
        if timer is not None:
            timer.cancel()
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


def event_stream(
    subscriber: RedisSSESubscriber,
    request: StreamRequest,
    options: StreamOptions,
    write_now: WriteNow | None = None,
) -> AsyncGenerator[str, None]:
    """The whole connection: ``subscriber.stream`` (replay + live + gaps) rendered for the wire.

    With ``write_now`` (call it from the event loop's thread), live events the connection can
    take at once are written by it directly instead of being yielded; see :class:`_StreamState`.
    """
    state = _StreamState(options, request.expires_at, write_now)
    items = subscriber.stream(
        request.user_id,
        [c.value for c in request.categories],
        request.last_event_id,
        sink=state.offer if write_now is not None else None,
    )
    return _render(items, state)
