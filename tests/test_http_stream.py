"""The framework-free wire stream, driven by a scripted source instead of Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from uuid import UUID

import pytest

from sse_core import SSEEvent, SSEEventType, StreamGap, uuid7
from sse_core.http import STREAM_RESET, StreamOptions, render_stream
from sse_core.http.stream import _StreamState
from sse_core.settings import SSESettings

USER = UUID("5d2f0a3e-9c61-4b1e-8f7a-2a9d5c3e7b10")


class Source:
    """An async iterator fed by the test; records whether it was cancelled or closed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SSEEvent | StreamGap | None] = asyncio.Queue()
        self.cancelled_reads = 0
        self.closed = False

    async def run(self) -> AsyncIterator[SSEEvent | StreamGap]:
        try:
            while True:
                try:
                    item = await self.queue.get()
                except asyncio.CancelledError:
                    self.cancelled_reads += 1
                    raise
                if item is None:
                    return
                yield item
        finally:
            self.closed = True


def event(n: int) -> SSEEvent:
    return SSEEvent(event_type=SSEEventType.IMPORT_PROGRESS, user_id=USER, data={"n": n})


async def chunks(stream: AsyncIterator[str], count: int) -> list[str]:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(count)]


OPTIONS = StreamOptions(retry_ms=250, heartbeat_seconds=60)


async def test_retry_hint_first_then_events_and_resets_in_order() -> None:
    source = Source()
    e1, e2 = event(1), event(2)
    for item in (e1, StreamGap("lagged", e1.event_id), e2, None):
        source.queue.put_nowait(item)
    got = [c async for c in render_stream(source.run(), OPTIONS)]
    assert got[0] == "retry: 250\n\n"
    assert got[1] == e1.to_sse_format()
    assert got[2].startswith(f"event: {STREAM_RESET}\ndata: ")
    assert json.loads(got[2].split("data: ")[1]) == {
        "reason": "lagged",
        "after_event_id": str(e1.event_id),
    }
    assert got[3] == e2.to_sse_format()
    assert len(got) == 4
    assert source.closed


async def test_gap_before_anything_was_delivered_has_null_after_id() -> None:
    source = Source()
    source.queue.put_nowait(StreamGap("resume", None))
    stream = render_stream(source.run(), OPTIONS)
    _, reset = await chunks(stream, 2)
    await stream.aclose()
    assert json.loads(reset.split("data: ")[1]) == {"reason": "resume", "after_event_id": None}


async def test_quiet_stream_pings_without_disturbing_the_pending_read() -> None:
    source = Source()
    stream = render_stream(source.run(), StreamOptions(retry_ms=0, heartbeat_seconds=0.02))
    assert await chunks(stream, 4) == ["retry: 0\n\n", ": ping\n\n", ": ping\n\n", ": ping\n\n"]
    e = event(1)
    source.queue.put_nowait(e)
    rest = await chunks(stream, 1)
    while rest[-1] == ": ping\n\n":
        rest += await chunks(stream, 1)
    assert rest[-1] == e.to_sse_format()
    assert source.cancelled_reads == 0  # heartbeats never cancelled the subscriber mid-read
    await stream.aclose()
    assert source.closed


async def test_max_events_ends_the_response() -> None:
    source = Source()
    for n in range(5):
        source.queue.put_nowait(event(n))
    got = [c async for c in render_stream(source.run(), StreamOptions(max_events=2))]
    assert len(got) == 3
    assert source.closed


async def test_max_seconds_ends_a_quiet_response() -> None:
    source = Source()
    options = StreamOptions(heartbeat_seconds=60, max_seconds=0.05)
    got = await asyncio.wait_for(_all(render_stream(source.run(), options)), 5)
    assert got == ["retry: 3000\n\n"]
    assert source.closed


async def test_an_expired_credential_ends_the_stream_at_once() -> None:
    source = Source()
    source.queue.put_nowait(event(1))
    got = await _all(render_stream(source.run(), OPTIONS, expires_at=time.time() - 1))
    assert got == ["retry: 250\n\n"]
    assert source.queue.qsize() == 1  # never subscribed, nothing read


async def test_cancelling_the_consumer_mid_wait_closes_the_source() -> None:
    source = Source()
    stream = render_stream(source.run(), OPTIONS)
    await chunks(stream, 1)
    consumer = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.01)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert source.closed


async def test_end_of_source_ends_the_stream() -> None:
    source = Source()
    source.queue.put_nowait(None)
    assert await _all(render_stream(source.run(), OPTIONS)) == ["retry: 250\n\n"]


def test_options_come_from_settings() -> None:
    options = StreamOptions.from_settings(
        SSESettings(retry_ms=1234, heartbeat_seconds=2.5), max_events=9
    )
    assert options == StreamOptions(1234, 2.5, 9, None)


def test_event_ids_are_the_uuid7_event_ids() -> None:
    e = event(1)
    assert e.to_sse_format().startswith(f"id: {e.event_id}\n")
    assert uuid7().version == 7


async def _all(stream: AsyncIterator[str]) -> list[str]:
    return [c async for c in stream]


async def test_a_broadcast_object_shared_by_connections_renders_correctly_everywhere() -> None:
    shared, other = event(1), event(2)
    sources = [Source() for _ in range(3)]
    for source in sources:
        for item in (shared, other, shared, None):
            source.queue.put_nowait(item)
    outputs = [await _all(render_stream(s.run(), OPTIONS)) for s in sources]
    expected = [
        "retry: 250\n\n",
        shared.to_sse_format(),
        other.to_sse_format(),
        shared.to_sse_format(),
    ]
    assert outputs == [expected] * 3


async def test_the_fast_path_writes_nothing_at_or_past_the_streams_end() -> None:
    """Only the loop ends a stream; a hand-over after the end must not write."""
    written: list[str] = []

    def write_now(chunk: str) -> bool:
        written.append(chunk)
        return True

    state = _StreamState(StreamOptions(max_seconds=0.05), write_now=write_now)
    state.start()
    assert state.offer(event(1))
    await asyncio.sleep(0.1)
    assert not state.offer(event(2))
    assert len(written) == 1
    assert state.sent == 1
