"""``SSE_KEY_LAYOUT=dashtam ssewatch serve`` pointed at a Redis the seed application writes.

The seed's writes are done with raw commands (:mod:`tests.support.seed_app`); the dashboard is
checked in headless Chromium and ``GET /events`` with the application's own access token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import httpx
import pytest
from httpx_sse import aconnect_sse
from playwright.async_api import Browser
from redis.asyncio import Redis

from sse_core.categories import SSEEventCategory
from sse_core.registry import EVENT_REGISTRY
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.seed_app import SeedEvent, SeedPublisher, access_token
from tests.support.sse_http import new_secret
from tests.test_http_dashboard import start_dashboard

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

APP_SECRET = new_secret()  # the application's JWT secret, given to ssewatch as SSE_TOKEN_SECRET
TYPE_OF: dict[SSEEventCategory, str] = {}
for _event_type, _info in EVENT_REGISTRY.items():
    TYPE_OF.setdefault(_info.category, _event_type.value)


@pytest.fixture
async def dashboard(redis_server: RedisServer) -> AsyncIterator[str]:
    env = {"SSE_KEY_LAYOUT": "dashtam", "SSE_TOKEN_SECRET": APP_SECRET, "SSE_RETRY_MS": "300"}
    base, proc = await start_dashboard(redis_server.url, env)
    try:
        yield base
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def subscribed(redis: Redis, user: UUID) -> bool:
    [(_, count)] = await redis.pubsub_numsub(f"sse:user:{user}")
    return int(count) > 0


async def test_events_resume_with_the_applications_token_and_last_event_id(
    dashboard: str, redis: Redis
) -> None:
    user = uuid4()
    seed = SeedPublisher(redis)
    before = [SeedEvent("import.progress", user, {"rows": n}) for n in range(5)]
    for e in before:
        await seed.publish(e)
    headers = {
        "Authorization": f"Bearer {access_token(APP_SECRET, user)}",
        "Last-Event-ID": str(before[1].event_id),
    }
    received: list[tuple[str, str, object]] = []
    async with (
        httpx.AsyncClient(timeout=15) as client,
        aconnect_sse(client, "GET", f"{dashboard}/events", headers=headers) as source,
    ):
        assert source.response.status_code == 200
        later = SeedEvent("import.completed", user, {"rows": 5})
        async for sse in source.aiter_sse():
            if not sse.data:
                continue
            received.append((sse.id, sse.event, json.loads(sse.data)))
            if len(received) == 3:  # the replay is done and the subscription is live
                await seed.publish(later)
            if len(received) == 4:
                break
    expected = [(str(e.event_id), e.event_type, e.data) for e in [*before[2:], later]]
    assert received == expected

    # A token for someone else, or signed with another secret, opens nothing.
    async with httpx.AsyncClient(timeout=15) as client:
        forged = access_token(new_secret(), user)
        response = await client.get(
            f"{dashboard}/events", headers={"Authorization": f"Bearer {forged}"}
        )
        assert response.status_code == 401
        other = access_token(APP_SECRET, uuid4())
        response = await client.get(
            f"{dashboard}/events?user={user}", headers={"Authorization": f"Bearer {other}"}
        )
        assert response.status_code == 403


@pytest.mark.browser
async def test_dashboard_counts_what_the_seed_publishes(
    dashboard: str, redis: Redis, browser: Browser
) -> None:
    user = uuid4()
    plan = {SSEEventCategory.DATA_SYNC: 3, SSEEventCategory.AI: 2, SSEEventCategory.SECURITY: 1}
    context = await browser.new_context(viewport={"width": 1500, "height": 1200})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(f"{dashboard}/?user={user}")
        await page.locator("[data-stat=total]").wait_for()
        await eventually(lambda: subscribed(redis, user), within=30, what="the seed channel")
        seed = SeedPublisher(redis)
        sent = [
            SeedEvent(TYPE_OF[category], user, {"n": n})
            for category, count in plan.items()
            for n in range(count)
        ]
        for e in sent:
            await seed.publish(e)
        await seed.broadcast(SeedEvent(TYPE_OF[SSEEventCategory.PROVIDER], uuid4(), {}))
        expected = {c.value: plan.get(c, 0) for c in SSEEventCategory} | {"provider": 1}

        async def counts() -> dict[str, int]:
            chips = page.locator(".chip[data-category]")
            pairs = await chips.evaluate_all(
                "els => els.map(e => [e.dataset.category, Number(e.dataset.count)])"
            )
            return dict(pairs)

        deadline = time.monotonic() + 30
        got = await counts()
        while got != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            got = await counts()
        assert got == expected
        total = await page.locator("[data-stat=total] .number").inner_text()
        assert total.replace(",", "") == str(sum(expected.values()))

        # The replay panel finds the position by id in the seed's stream, and says that
        # broadcasts are not retained there.
        field = page.locator(".replay-last-id input")
        await field.fill(str(sent[1].event_id))
        await field.press("Enter")
        await page.get_by_role("button", name="Load missed events").click()
        summary = page.locator(".replay-summary [data-rows]")
        await summary.wait_for()
        assert await summary.get_attribute("data-rows") == str(len(sent) - 2)
        assert await summary.get_attribute("data-complete") == "true"
        assert "broadcasts are not retained" in await summary.inner_text()
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
