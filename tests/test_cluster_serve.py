"""``ssewatch serve --redis-url <a cluster node>``: the dashboard in Chromium and ``GET /events``
both work on a real local Redis Cluster (detected from the URL alone)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from httpx_sse import aconnect_sse
from playwright.async_api import Browser
from redis.asyncio.cluster import RedisCluster

from sse_core.categories import SSEEventCategory
from sse_core.http import TokenSigner
from sse_core.keys import SSEChannelKeys
from sse_core.publisher import RedisSSEPublisher
from tests.support.polling import eventually
from tests.support.redis_cluster import LocalCluster
from tests.support.sse_http import new_secret
from tests.test_dashboard_browser import column, counts, event, stat
from tests.test_http_dashboard import start_dashboard

pytestmark = [pytest.mark.redis, pytest.mark.browser]

KEYS = SSEChannelKeys()
SECRET = new_secret()


async def test_serve_on_a_cluster_in_chromium_and_over_events(
    redis_cluster: LocalCluster, cluster_client: RedisCluster, browser: Browser
) -> None:
    env = {"SSE_TOKEN_SECRET": SECRET, "SSE_RETRY_MS": "500"}
    base, proc = await start_dashboard(redis_cluster.url, env)
    publisher = RedisSSEPublisher(cluster_client, enable_retention=True, raise_errors=True)
    viewer, reader = uuid.uuid4(), uuid.uuid4()
    context = await browser.new_context(viewport={"width": 1500, "height": 1200})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        # The dashboard: live counts and feed for one user, from the user's node.
        await page.goto(f"{base}/?user={viewer}")
        await page.locator("[data-stat=total]").wait_for()
        connected = page.locator("[data-connection=connected]")
        await connected.wait_for(timeout=30_000)  # the pub/sub status, from the cluster hub
        label = page.locator("code", has_text="(Redis Cluster)")  # the status bar's Redis label
        assert await label.count() == 1
        await eventually(
            lambda: redis_cluster.shard_subscribers(KEYS.user_channel(viewer)) >= 1,
            within=30,
            what="the dashboard's SSUBSCRIBE",
        )
        shown = [event(viewer, SSEEventCategory.AI, n=i) for i in range(3)]
        for e in shown:
            assert await publisher.publish(e)
        shared = event(viewer, SSEEventCategory.SECURITY, n=99)
        assert await publisher.broadcast(shared)
        expected = {c.value: 0 for c in SSEEventCategory} | {"ai": 3, "security": 1}

        async def counted() -> bool:
            return await counts(page) == expected

        await eventually(counted, within=30, what="per-category counts")
        assert await stat(page, "total") == "4"
        feed = await column(page, "live-feed", "event_id")
        assert feed == [str(e.event_id) for e in reversed([*shown, shared])]

        # GET /events on the same server: resume after a missed event, then live.
        first, missed = event(reader, SSEEventCategory.IMPORT), event(reader, SSEEventCategory.AI)
        later = [event(reader, SSEEventCategory.AI, n=i) for i in range(2)]
        assert await publisher.publish(first)
        assert await publisher.publish(missed)
        token = TokenSigner(SECRET).mint(reader, 120)
        headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(first.event_id)}
        got: list[str] = []
        async with (
            httpx.AsyncClient(timeout=20) as client,
            aconnect_sse(client, "GET", f"{base}/events", headers=headers) as source,
        ):
            async for sse in source.aiter_sse():
                if sse.retry is not None:
                    continue
                got.append(sse.id)
                if len(got) == 1:
                    await eventually(
                        lambda: redis_cluster.shard_subscribers(KEYS.user_channel(reader)),
                        within=30,
                        what="the endpoint's SSUBSCRIBE",
                    )
                    assert await publisher.publish_many(later)
                if len(got) == 3:
                    break
        assert got == [str(e.event_id) for e in [missed, *later]]
    finally:
        await context.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
    assert not errors, f"JavaScript errors on the page: {errors}"
