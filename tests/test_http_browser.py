"""A real browser's ``EventSource`` against ``GET /events``: resume across server-side closes.

The server ends every response after a few events (``max_events``) while events keep being
published; Chromium reconnects by itself after the short ``retry:`` hint, sending
``Last-Event-ID``, and the page must end up with every event exactly once, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from playwright.async_api import Browser
from redis.asyncio import Redis
from tornado.web import RequestHandler

from sse_core import RedisSSEPublisher, SSEEvent, SSEEventType, SSESettings
from sse_core.http import TokenSigner
from sse_core.http.tornado import event_routes
from tests.support.polling import eventually
from tests.support.sse_http import channel_subscribers, new_secret, tornado_server

pytestmark = [pytest.mark.redis, pytest.mark.browser]

USER = UUID("c4a1e2b3-7d6f-4e5a-9b8c-0d1e2f3a4b5c")
SECRET = new_secret()

PAGE = """<!doctype html><meta charset="utf-8"><title>ssewatch EventSource</title>
<script>
  window.received = []; window.opens = 0; window.errors = 0; window.resets = [];
  const token = new URLSearchParams(location.search).get("token");
  const source = new EventSource("/events?token=" + encodeURIComponent(token));
  source.onopen = () => { window.opens += 1; };
  source.onerror = () => { window.errors += 1; };
  source.addEventListener("import.progress", (e) => {
    window.received.push({id: e.lastEventId, n: JSON.parse(e.data).n});  // data: the payload
  });
  source.addEventListener("stream-reset", (e) => { window.resets.push(JSON.parse(e.data)); });
</script>"""


class PageHandler(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(PAGE)


async def test_eventsource_reconnects_with_last_event_id_and_misses_nothing(
    redis: Redis, browser: Browser
) -> None:
    settings = SSESettings(token_secret=SECRET, retry_ms=100, heartbeat_seconds=5)
    routes: list[Any] = [*event_routes(redis, settings, max_events=4), (r"/", PageHandler)]
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    events = [
        SSEEvent(event_type=SSEEventType.IMPORT_PROGRESS, user_id=USER, data={"n": n})
        for n in range(30)
    ]
    token = TokenSigner(SECRET).mint(USER, 300)
    async with tornado_server(routes) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/?token={token}")
        await eventually(lambda: page.evaluate("window.opens >= 1"), what="EventSource open")
        await eventually(lambda: channel_subscribers(redis, USER), what="SUBSCRIBE")
        for e in events:  # published steadily, also while the browser is reconnecting
            await publisher.publish(e)
            await asyncio.sleep(0.02)
        await eventually(
            lambda: page.evaluate(f"window.received.length >= {len(events)}"),
            within=30,
            what="all events in the page",
        )
        await asyncio.sleep(0.3)  # let any duplicate that would arrive late arrive
        received = await page.evaluate("window.received")
        opens = await page.evaluate("window.opens")
        resets = await page.evaluate("window.resets")
    assert [r["id"] for r in received] == [str(e.event_id) for e in events]
    assert [r["n"] for r in received] == list(range(len(events)))
    assert opens >= len(events) // 4  # the server really closed it, repeatedly
    assert resets == []
