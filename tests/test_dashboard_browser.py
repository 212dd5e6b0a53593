"""The dashboard in a real headless Chromium, served by ``ssewatch serve`` on a real redis-server.

Demo traffic is off (a real Redis URL is given); each test publishes its own known events for a
fresh user with ``RedisSSEPublisher`` (retention on) and reads exact values from the page's
``data-*`` attributes and tables. Everything waits by polling with a deadline.
"""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
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
from tests.support.redis_server import RedisServer, free_port

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 20.0
KEYS = SSEChannelKeys()
TYPE_OF: dict[SSEEventCategory, SSEEventType] = {}
for _event_type, _info in EVENT_REGISTRY.items():
    TYPE_OF.setdefault(_info.category, _event_type)

T = TypeVar("T")


# -- the server under test --------------------------------------------------------------------


class DashboardProcess:
    """``python -m dashboard.cli serve`` as a child process, stopped by pid."""

    def __init__(self, redis_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        args = [sys.executable, "-m", "dashboard.cli", "serve", "--port", str(self.port)]
        args += ["--redis-url", redis_url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSE_")}
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 75  # a first page on a busy 2-core machine takes ~20 s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dashboard exited early:\n{self.log()}")
            try:
                # A generous timeout: each aborted try would still build a whole session.
                with urllib.request.urlopen(self.url + "/", timeout=60) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dashboard did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


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
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


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


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    what: str,
    within: float = DEADLINE,
) -> T:
    deadline = time.monotonic() + within
    value = await probe()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.1)
        value = await probe()
    return value


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
