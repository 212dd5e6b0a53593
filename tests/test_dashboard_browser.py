"""The dashboard in a real headless Chromium, served by ``ssewatch serve`` on a real redis-server.

Demo traffic is off (a real Redis URL is given); each test publishes its own known events for a
fresh user with ``RedisSSEPublisher`` (retention on) and reads exact values from the page's
``data-*`` attributes and tables. Everything waits by polling with a deadline.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import pytest
from playwright.async_api import Browser, Page
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from sse_core.categories import SSEEventCategory
from sse_core.events import SSEEvent
from sse_core.keys import SSEChannelKeys
from sse_core.publisher import RedisSSEPublisher
from sse_core.registry import EVENT_REGISTRY, SSEEventType
from tests.support.dashboard import DashboardProcess
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.timeout(120)]

KEYS = SSEChannelKeys()
TYPE_OF: dict[SSEEventCategory, SSEEventType] = {}
for _event_type, _info in EVENT_REGISTRY.items():
    TYPE_OF.setdefault(_info.category, _event_type)

T = TypeVar("T")


# -- the server under test --------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard_server(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardProcess]:
    server = DashboardProcess(redis_server.url, tmp_path_factory.mktemp("dash") / "serve.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1500, "height": 1200})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


# -- helpers ----------------------------------------------------------------------------------


def event(user: UUID, category: SSEEventCategory, **data: Any) -> SSEEvent:
    return SSEEvent(event_type=TYPE_OF[category], user_id=user, data=data)


async def publish(redis: Redis, events: list[SSEEvent]) -> None:
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    for item in events:  # one by one: each gets its own millisecond-ordered id already
        await publisher.publish(item)


async def subscribers(redis: Redis, user: UUID) -> int:
    channel = KEYS.user_channel(user)
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


async def open_view(page: Page, server: DashboardProcess, redis: Redis, query: str) -> None:
    """Open the dashboard and wait until its live subscription is confirmed by Redis."""
    await page.goto(f"{server.url}/{query}")
    await page.locator("[data-stat=total]").wait_for()
    user = UUID(query.split("user=")[1].split("&")[0])
    await eventually(lambda: subscribers(redis, user), lambda n: n >= 1, "the live subscription")


async def stat(page: Page, name: str) -> str:
    return (await page.locator(f"[data-stat={name}] .number").inner_text()).replace(",", "")


async def counts(page: Page) -> dict[str, int]:
    chips = page.locator(".chip[data-category]")
    pairs = await chips.evaluate_all(
        "els => els.map(e => [e.dataset.category, Number(e.dataset.count)])"
    )
    return dict(pairs)


async def column(page: Page, table_class: str, field: str) -> list[str]:
    cells = page.locator(f".{table_class} .tabulator-row .tabulator-cell[tabulator-field={field}]")
    return [text.strip() for text in await cells.all_inner_texts()]


async def shadow_text(page: Page, selector: str) -> str:
    host = page.locator(selector)
    if not await host.is_visible():
        return ""
    text: str = await host.evaluate("e => (e.shadowRoot || e).textContent")
    return text


# -- tests ------------------------------------------------------------------------------------


async def test_live_counts_and_feed_show_exactly_what_was_published(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}")
    plan = {
        SSEEventCategory.DATA_SYNC: 3,
        SSEEventCategory.AI: 2,
        SSEEventCategory.SECURITY: 1,
        SSEEventCategory.PORTFOLIO: 4,
    }
    events = [event(user, c, n=i) for c, n in plan.items() for i in range(n)]
    await publish(redis, events)

    expected = {c.value: plan.get(c, 0) for c in SSEEventCategory}
    await eventually(lambda: counts(page), lambda got: got == expected, "per-category counts")
    assert await stat(page, "total") == str(len(events))
    feed_ids = await eventually(
        lambda: column(page, "live-feed", "event_id"),
        lambda ids: len(ids) == len(events),
        "the feed rows",
    )
    assert feed_ids == [str(e.event_id) for e in reversed(events)]  # newest first
    categories = await column(page, "live-feed", "category")
    assert categories[0].endswith(events[-1].category.value)

    # The feed keeps up with later events too (and the counts keep adding up).
    more = [event(user, SSEEventCategory.IMPORT, n=i) for i in range(2)]
    await publish(redis, more)
    expected["import"] = 2
    await eventually(lambda: counts(page), lambda got: got == expected, "counts after more")
    newest = await eventually(
        lambda: column(page, "live-feed", "event_id"),
        lambda ids: bool(ids) and ids[0] == str(more[-1].event_id),
        "the newest event on top of the feed",
    )
    assert newest[1] == str(more[0].event_id)


async def test_url_query_selects_user_and_categories(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user, other = uuid4(), uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}&categories=data_sync,ai")
    await publish(
        redis,
        [
            event(user, SSEEventCategory.DATA_SYNC),
            event(user, SSEEventCategory.AI),
            event(user, SSEEventCategory.AI),
            event(user, SSEEventCategory.SECURITY),  # filtered out
            event(user, SSEEventCategory.IMPORT),  # filtered out
            event(other, SSEEventCategory.AI),  # another user's
        ],
    )
    expected = {c.value: 0 for c in SSEEventCategory} | {"data_sync": 1, "ai": 2}
    await eventually(lambda: counts(page), lambda got: got == expected, "filtered counts")
    assert await stat(page, "total") == "3"
    chosen = page.locator(".category-filter .choices__list--multiple .choices__item")
    values = await chosen.evaluate_all("els => els.map(e => e.dataset.value)")
    assert sorted(values) == ["ai", "data_sync"]
    select = page.locator(".user-select select")
    assert await select.input_value() == str(user)
    assert f"user={user}" in page.url


async def test_replay_panel_loads_exactly_the_missed_events(
    page: Page, dashboard_server: DashboardProcess, redis: Redis, tmp_path: Path
) -> None:
    user = uuid4()
    history = [
        event(user, c, step=i)
        for i, c in enumerate(
            [
                SSEEventCategory.DATA_SYNC,
                SSEEventCategory.AI,
                SSEEventCategory.IMPORT,
                SSEEventCategory.AI,
                SSEEventCategory.SECURITY,
                SSEEventCategory.PROVIDER,
            ]
        )
    ]
    await publish(redis, history)
    await open_view(page, dashboard_server, redis, f"?user={user}")

    field = page.locator(".replay-last-id input")
    await field.fill(str(history[1].event_id))
    await field.press("Enter")
    await page.get_by_role("button", name="Load missed events").click()
    summary = page.locator(".replay-summary [data-rows]")
    await summary.wait_for()
    assert await summary.get_attribute("data-rows") == "4"
    assert await summary.get_attribute("data-complete") == "true"
    ids = await eventually(
        lambda: column(page, "replay-table", "event_id"), lambda got: len(got) == 4, "table rows"
    )
    assert ids == [str(e.event_id) for e in history[2:]]

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download CSV").click()
    download = await download_info.value
    saved = tmp_path / "replay.csv"
    await download.save_as(saved)
    with saved.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["event_id"] for row in rows] == ids
    assert [row["data.step"] for row in rows] == ["2", "3", "4", "5"]


async def test_clicking_a_feed_row_replays_after_it(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}")
    live = [event(user, SSEEventCategory.PORTFOLIO, n=i) for i in range(5)]
    await publish(redis, live)
    field = page.locator(".replay-last-id input")
    # Prefilled with the newest id seen ("follow the newest event id").
    await eventually(field.input_value, lambda v: v == str(live[-1].event_id), "prefilled id")

    await eventually(
        lambda: column(page, "live-feed", "event_id"), lambda ids: len(ids) == 5, "feed rows"
    )
    third_newest = page.locator(".live-feed .tabulator-row").nth(2)
    await third_newest.locator(".tabulator-cell[tabulator-field=event_type]").click()
    await eventually(field.input_value, lambda v: v == str(live[2].event_id), "clicked id")
    await page.get_by_role("button", name="Load missed events").click()
    ids = await eventually(
        lambda: column(page, "replay-table", "event_id"), lambda got: len(got) == 2, "rows"
    )
    assert ids == [str(live[3].event_id), str(live[4].event_id)]


async def test_bad_input_is_explained_on_the_page(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}")

    entry = page.locator(".user-entry input")
    await entry.fill("not-a-uuid")
    await entry.press("Enter")
    message = await eventually(
        lambda: shadow_text(page, ".user-error"), bool, "the invalid user id message"
    )
    assert "invalid user id 'not-a-uuid'" in message
    assert "expected a UUID" in message
    assert await page.locator(".user-select select").input_value() == str(user)  # unchanged

    field = page.locator(".replay-last-id input")
    await field.fill(str(uuid4()))  # a UUID, but version 4: replay seeks by a UUIDv7's time
    await field.press("Enter")
    await page.get_by_role("button", name="Load missed events").click()
    message = await eventually(
        lambda: shadow_text(page, ".replay-error"), bool, "the invalid event id message"
    )
    assert "UUIDv7" in message

    await entry.fill(str(user).upper())  # a valid id clears the message
    await entry.press("Enter")
    await eventually(lambda: shadow_text(page, ".user-error"), lambda t: t == "", "cleared")

    await page.goto(f"{dashboard_server.url}/?user=garbage&categories=ai,nonsense")
    user_message = await eventually(
        lambda: shadow_text(page, ".user-error"), bool, "URL user message"
    )
    assert "invalid user id 'garbage'" in user_message
    category_message = await eventually(
        lambda: shadow_text(page, ".category-error"), bool, "URL category message"
    )
    assert "Invalid category 'nonsense'" in category_message
    assert "Traceback" not in await page.content()

    # A crafted link must not inject markup through the error message that quotes it.
    await page.goto(f'{dashboard_server.url}/?user=<img src=x onerror="window.pwned=1">')
    injected = await eventually(lambda: shadow_text(page, ".user-error"), bool, "message")
    assert '<img src=x onerror="window.pwned=1">' in injected  # shown as text
    assert await page.locator(".user-error img").count() == 0
    assert await page.evaluate("window.pwned === undefined")


async def test_closing_the_tab_ends_its_subscription(
    browser: Browser, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    context = await browser.new_context()
    page = await context.new_page()
    await open_view(page, dashboard_server, redis, f"?user={user}")
    assert await subscribers(redis, user) == 1
    closed_at = time.monotonic()
    await context.close()
    await eventually(
        lambda: subscribers(redis, user), lambda n: n == 0, "the subscription to end", 15
    )
    # Bokeh destroys a session UNUSED_SESSION_MS after its socket closed, checked every
    # CHECK_UNUSED_MS (2 s + 1 s); its default would be 15 s + 17 s.
    assert time.monotonic() - closed_at < 8


async def test_view_recovers_by_itself_when_redis_comes_back(
    browser: Browser, own_redis_server: RedisServer, tmp_path: Path
) -> None:
    server = DashboardProcess(own_redis_server.url, tmp_path / "serve.log")
    client = Redis.from_url(own_redis_server.url)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        user = uuid4()
        await open_view(page, server, client, f"?user={user}")
        await publish(client, [event(user, SSEEventCategory.AI) for _ in range(2)])
        await eventually(lambda: stat(page, "total"), lambda v: v == "2", "first events")

        connection = page.locator("[data-connection]")
        own_redis_server.stop(save=True)
        await eventually(
            lambda: connection.get_attribute("data-connection"),
            lambda state: state == "reconnecting",
            "the reconnecting status",
        )
        notice = await eventually(lambda: shadow_text(page, ".notice"), bool, "notice")
        assert "reconnecting" in notice

        own_redis_server.start()
        await eventually(
            lambda: connection.get_attribute("data-connection"),
            lambda state: state == "connected",
            "the connection to come back",
        )
        await client.aclose()
        client = Redis.from_url(own_redis_server.url)
        await eventually(lambda: subscribers(client, user), lambda n: n == 1, "resubscribed")
        await publish(client, [event(user, SSEEventCategory.SECURITY) for _ in range(3)])
        await eventually(lambda: stat(page, "total"), lambda v: v == "5", "events after return")
        reconnects = page.locator("[data-reconnects]")
        assert int(await reconnects.get_attribute("data-reconnects") or 0) >= 1
        await eventually(lambda: shadow_text(page, ".notice"), lambda t: t == "", "notice gone")
    finally:
        await context.close()
        await client.aclose()
        server.stop()


async def scrape(server: DashboardProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``GET /metrics`` parsed by prometheus_client's own parser: sample name → labels → value."""

    def get() -> str:
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            body: bytes = response.read()
            return body.decode()

    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(await asyncio.to_thread(get)):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


async def test_metrics_count_what_a_dashboard_view_received(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    before = await scrape(dashboard_server)
    assert all(name.startswith("ssewatch_") for name in before)
    delivered = "ssewatch_events_delivered_total"

    def delivered_of(samples: dict[str, Any], category: str) -> float:
        return float(samples[delivered][(("category", category),)])

    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}")
    plan = {SSEEventCategory.AI: 3, SSEEventCategory.SECURITY: 2}
    await publish(redis, [event(user, c) for c, n in plan.items() for _ in range(n)])
    await eventually(lambda: stat(page, "total"), lambda v: v == "5", "the events on the page")

    after = await eventually(
        lambda: scrape(dashboard_server),
        lambda s: delivered_of(s, "ai") - delivered_of(before, "ai") >= 3,
        "the delivered counter",
    )
    for category in SSEEventCategory:
        grew = delivered_of(after, category.value) - delivered_of(before, category.value)
        assert grew == plan.get(category, 0), category
    assert after["ssewatch_dashboard_sessions"][()] >= 1
    assert after["ssewatch_live_subscriptions"][()] >= 1
    assert after["ssewatch_redis_connected"][()] == 1
    assert after["ssewatch_events_connections"][()] == 0  # no GET /events client here
    for name in ("events_dropped", "events_malformed", "lagged", "stream_gaps"):
        assert set(after[f"ssewatch_{name}_total"]) == {
            (("consumer", "dashboard"),),
            (("consumer", "events"),),
        }
    assert "ssewatch_redis_reconnects_total" in after
    assert after["ssewatch_process_resident_memory_bytes"][()] > 0

    # A replay loaded in the panel is counted with its completeness.
    field = page.locator(".replay-last-id input")
    await eventually(field.input_value, bool, "the prefilled id")
    await page.get_by_role("button", name="Load missed events").click()
    await page.locator(".replay-summary [data-rows]").wait_for()
    complete = (("complete", "true"),)
    replays = before["ssewatch_replays_total"].get(complete, 0.0)
    await eventually(
        lambda: scrape(dashboard_server),
        lambda s: s["ssewatch_replays_total"][complete] == replays + 1,
        "the replay counter",
    )


# -- round two: history, failures, inspector, search, pause, window ---------------------------


def event_at(user: UUID, event_type: SSEEventType, ago_s: float, **data: Any) -> SSEEvent:
    """An event that happened ``ago_s`` seconds ago (its UUIDv7 id carries the same time)."""
    from datetime import UTC, datetime

    from sse_core.ids import uuid7

    ms = int((time.time() - ago_s) * 1000)
    return SSEEvent(
        event_id=uuid7(now_ms=ms),
        event_type=event_type,
        user_id=user,
        occurred_at=datetime.fromtimestamp(ms / 1000, UTC),
        data=data,
    )


async def coverage(page: Page) -> tuple[str, str]:
    line = page.locator(".coverage[data-complete]")
    await line.wait_for()
    return (await line.get_attribute("data-complete") or ""), await line.inner_text()


async def test_opening_a_user_back_fills_the_window_from_retention(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    # History only: 10 minutes ago (outside a 5-minute window), then 4 and 2 minutes ago.
    await publish(
        redis,
        [
            event_at(user, SSEEventType.AI_RESPONSE_CHUNK, 600, n=1),
            event_at(user, SSEEventType.SYNC_ACCOUNTS_FAILED, 240, n=2),
            event_at(user, SSEEventType.IMPORT_COMPLETED, 120, n=3),
            event_at(user, SSEEventType.SECURITY_LOGIN_FAILED, 119, n=4),
        ],
    )
    await open_view(page, dashboard_server, redis, f"?user={user}&window=300")
    expected = {c.value: 0 for c in SSEEventCategory} | {
        "data_sync": 1,
        "import": 1,
        "security": 1,
    }
    await eventually(lambda: counts(page), lambda got: got == expected, "back-filled counts")
    assert await stat(page, "total") == "3"  # no new traffic at all
    assert await stat(page, "failures") == "2"
    failures_card = await page.locator("[data-stat=failures]").inner_text()
    assert "0.4/min" in failures_card  # 2 failures over the 5 covered minutes
    complete, text = await coverage(page)
    assert complete == "true"
    assert "last 5 min from retention + live" in text
    types = await column(page, "live-feed", "event_type")
    assert types == ["security.login.failed", "import.completed", "sync.accounts.failed"]

    # Live events go on from there, none counted twice.
    await publish(redis, [event(user, SSEEventCategory.IMPORT)])
    await eventually(lambda: stat(page, "total"), lambda v: v == "4", "the live event")
    await asyncio.sleep(0.5)
    assert await stat(page, "total") == "4"

    # Another window: one more bounded read, now reaching the event 10 minutes ago.
    await page.locator(".window-select select").select_option(label="15 minutes")
    await eventually(lambda: stat(page, "total"), lambda v: v == "5", "the 15-minute window")
    assert "window=900" in page.url


async def test_the_view_says_when_retention_does_not_reach_back(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    publisher = RedisSSEPublisher(redis, enable_retention=True, retention_max_len=2)
    # Retention keeps 2 entries (trimmed by size): the older ones are gone.
    for ago in (200, 150, 100, 50):
        await publisher.publish(event_at(user, SSEEventType.AI_RESPONSE_COMPLETE, ago))
    await redis.xtrim(KEYS.user_stream(user), maxlen=2, approximate=False)
    await open_view(page, dashboard_server, redis, f"?user={user}&window=300")
    _, text = await eventually(
        lambda: coverage(page), lambda c: c[0] == "false", "the partial coverage"
    )
    assert "retention reaches back only" in text
    assert await stat(page, "total") == "2"
    assert await stat(page, "gaps") == "0"  # a limit of the history, not a gap in the stream


async def test_failures_stand_out_in_the_feed(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}")
    await publish(
        redis,
        [
            event_at(user, SSEEventType.SYNC_HOLDINGS_COMPLETED, 0),
            event_at(user, SSEEventType.PROVIDER_TOKEN_FAILED, 0),
            event_at(user, SSEEventType.SECURITY_SESSION_EXPIRING, 0),
        ],
    )
    levels = await eventually(
        lambda: column(page, "live-feed", "severity"), lambda v: len(v) == 3, "three rows"
    )
    assert levels == ["warning", "failure", ""]
    assert await stat(page, "failures") == "1"
    failed_cell = page.locator(".live-feed .tabulator-row").nth(1)
    color = await failed_cell.locator("[tabulator-field=event_type]").evaluate(
        "e => getComputedStyle(e).color"
    )
    assert color == "rgb(242, 73, 92)"  # the failure red
    fine = page.locator(".live-feed .tabulator-row").nth(2)
    assert (
        await fine.locator("[tabulator-field=event_type]").evaluate(
            "e => getComputedStyle(e).color"
        )
        != color
    )


async def test_the_inspector_shows_a_long_nested_event_whole(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}")
    payload = {
        "import_id": "imp_1",
        "error": "bad row " + "x" * 3000 + " END",
        "details": {"rows": [{"line": i, "cells": ["a", {"deep": [i, i * 2]}]} for i in range(40)]},
        "markup": '<img src=x onerror="window.pwned=1"><b>bold</b>',
    }
    target = event_at(user, SSEEventType.IMPORT_FAILED, 0, **payload)
    await publish(redis, [target, event(user, SSEEventCategory.AI)])
    await eventually(
        lambda: column(page, "live-feed", "event_id"), lambda ids: len(ids) == 2, "rows"
    )
    row = page.locator(".live-feed .tabulator-row").nth(1)
    pane = page.locator(".inspector-json textarea")

    async def click_row() -> bool:
        # Clicked again only if the first click was never reported (a busy browser); what is
        # tested is what the inspector shows.
        if not await pane.is_visible():
            await row.locator(".tabulator-cell[tabulator-field=event_type]").click()
            await asyncio.sleep(1.0)
        return await pane.is_visible()

    await eventually(click_row, bool, "the inspector to open")
    text = await eventually(pane.input_value, lambda t: "END" in t, "the inspected event")
    shown = json.loads(text)
    assert shown == json.loads(json.dumps(target.to_dict(), default=str))  # every field, in full
    assert shown["data"]["markup"] == payload["markup"]  # as text
    assert await page.locator(".inspector img").count() == 0
    assert await page.evaluate("window.pwned === undefined")
    id_field = page.locator(".inspector-id input")
    assert await id_field.input_value() == str(target.event_id)
    # Still feeds the replay panel.
    replay_field = page.locator(".replay-last-id input")
    await eventually(replay_field.input_value, lambda v: v == str(target.event_id), "replay id")


async def test_the_feed_filters_by_type_and_searches_text(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}")
    events = [
        event_at(user, SSEEventType.SYNC_ACCOUNTS_FAILED, 0, error="provider timeout"),
        event_at(user, SSEEventType.SYNC_ACCOUNTS_FAILED, 0, error="rate limited"),
        event_at(user, SSEEventType.IMPORT_FAILED, 0, error="Provider Timeout again"),
        event_at(user, SSEEventType.AI_RESPONSE_CHUNK, 0, chunk="hello"),
    ]
    await publish(redis, events)
    await eventually(lambda: column(page, "live-feed", "event_id"), lambda v: len(v) == 4, "rows")

    search = page.locator(".feed-search input")
    await search.fill("provider timeout")
    ids = await eventually(
        lambda: column(page, "live-feed", "event_id"), lambda v: len(v) == 2, "search hits"
    )
    assert ids == [str(events[2].event_id), str(events[0].event_id)]  # case-insensitive

    await page.locator(".type-filter .choices").click()
    dropdown = page.locator(".type-filter .choices__list--dropdown")
    await dropdown.locator('[data-value="sync.accounts.failed"]').click()
    ids = await eventually(
        lambda: column(page, "live-feed", "event_id"), lambda v: len(v) == 1, "type and text"
    )
    assert ids == [str(events[0].event_id)]
    await search.fill("")
    ids = await eventually(
        lambda: column(page, "live-feed", "event_id"), lambda v: len(v) == 2, "type only"
    )
    assert ids == [str(events[1].event_id), str(events[0].event_id)]
    # A new matching event shows up under the same filter; others do not.
    later = [
        event_at(user, SSEEventType.AI_RESPONSE_CHUNK, 0),
        event_at(user, SSEEventType.SYNC_ACCOUNTS_FAILED, 0, error="later"),
    ]
    await publish(redis, later)
    ids = await eventually(
        lambda: column(page, "live-feed", "event_id"), lambda v: len(v) == 3, "a new match"
    )
    assert ids[0] == str(later[1].event_id)


async def test_pause_freezes_every_number_and_resume_catches_up(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}")
    await publish(redis, [event(user, SSEEventCategory.AI) for _ in range(2)])
    await eventually(lambda: stat(page, "total"), lambda v: v == "2", "first events")

    await page.get_by_role("button", name="Pause").click()
    await page.locator(".badge").wait_for()  # the paused badge
    await publish(
        redis,
        [event(user, SSEEventCategory.AI)]
        + [event_at(user, SSEEventType.SECURITY_LOGIN_FAILED, 0) for _ in range(2)],
    )
    await asyncio.sleep(1.5)  # several flush ticks
    assert await stat(page, "total") == "2"
    assert await stat(page, "failures") == "0"
    assert (await counts(page))["ai"] == 2
    assert len(await column(page, "live-feed", "event_id")) == 2

    await page.get_by_role("button", name="Resume").click()
    await eventually(lambda: stat(page, "total"), lambda v: v == "5", "caught up")
    assert await stat(page, "failures") == "2"
    assert (await counts(page))["security"] == 2
    assert len(await column(page, "live-feed", "event_id")) == 5


async def test_the_window_lives_in_the_url(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}&window=900")
    select = page.locator("select").filter(has_text="15 minutes")
    assert await select.input_value() == await select.locator(
        "option", has_text="15"
    ).get_attribute("value")
    # The first page shows the default window until the first flush of the new subscription.
    await eventually(
        lambda: page.locator("[data-stat=total] .label").text_content(),
        lambda t: "Events · last 15 min" in (t or ""),
        "the window from the URL",
    )
    await select.select_option(label="5 minutes")
    await eventually(lambda: asyncio.sleep(0, page.url), lambda u: "window=300" in u, "the URL")
    # A link with the window opens on it.
    await page.goto(f"{dashboard_server.url}/?user={user}&window=300")
    await eventually(
        lambda: page.locator("[data-stat=total] .label").text_content(),
        lambda t: "last 5 min" in (t or ""),
        "the window from the link",
    )


# -- offline: nothing but our own server ------------------------------------------------------


def same_origin(url: str, origin: str) -> bool:
    if url.startswith(("data:", "blob:", "about:")):
        return True
    here, there = urlsplit(url), urlsplit(origin)
    return (here.scheme, here.hostname, here.port) == (there.scheme, there.hostname, there.port)


async def test_the_page_requests_nothing_but_its_own_server(
    page: Page, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    """Offline by default: every request the page makes (recorded, none blocked) is to us.

    The page loads, draws events, opens the inspector, loads a replay, opens a dropdown and
    switches theme (a reload): each of these loads its own code, styles, fonts and icons.
    """
    requests: list[str] = []
    failed: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("requestfailed", lambda request: failed.append(f"{request.url} {request.failure}"))
    user = uuid4()
    await open_view(page, dashboard_server, redis, f"?user={user}")
    target = event(user, SSEEventCategory.IMPORT, rows=3)
    await publish(redis, [target, event(user, SSEEventCategory.AI)])
    await eventually(lambda: stat(page, "total"), lambda v: v == "2", "the events")

    pane = page.locator(".inspector-json textarea")
    row = page.locator(".live-feed .tabulator-row").nth(1)

    async def click_row() -> bool:
        if not await pane.is_visible():
            await row.locator(".tabulator-cell[tabulator-field=event_type]").click()
            await asyncio.sleep(1.0)
        return await pane.is_visible()

    await eventually(click_row, bool, "the inspector to open")
    await page.get_by_role("button", name="Load missed events").click()
    await eventually(
        lambda: column(page, "replay-table", "event_id"), lambda ids: len(ids) == 1, "replay"
    )
    await page.locator(".type-filter input").first.click()
    # Button icons are inline SVG, not glyphs of a web font.
    for label in ("Pause", "Load missed events", "Copy id"):
        assert await page.get_by_role("button", name=label).locator("svg").count() == 1, label

    await page.goto(f"{dashboard_server.url}/?user={user}&theme=light")
    await eventually(lambda: stat(page, "total"), lambda v: v == "2", "the light page")
    broken_fonts = await page.evaluate(
        "[...document.fonts].filter(f => f.status === 'error').map(f => f.family)"
    )

    assert len(requests) > 10
    external = [url for url in requests if not same_origin(url, dashboard_server.url)]
    assert external == [], "\n".join(external)
    assert failed == []
    assert broken_fonts == []
