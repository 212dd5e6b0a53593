"""Nothing an event or a link carries is ever rendered as markup (issue #9, items 1 and 2).

A real ``ssewatch serve`` on a real redis-server, a real headless Chromium. Every field a
producer controls (data keys, nested keys, values, lists) and every query parameter carries a
payload that would set ``window.__xss`` and open a dialog if it were parsed as HTML; the page is
driven through the live feed, the replay table, the alerts and the charts' hover tools, and the
sentinel must stay unset, no dialog may open, and the payload must be *shown* as text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar
from urllib.parse import quote
from uuid import UUID, uuid4

import pytest
from playwright.async_api import Browser, Page
from redis.asyncio import Redis

from sse_core.events import SSEEvent
from sse_core.keys import SSEChannelKeys
from sse_core.publisher import RedisSSEPublisher
from sse_core.registry import SSEEventType
from tests.support.dashboard import DashboardProcess
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.timeout(180)]

PAYLOAD = '<img src=x onerror="window.__xss=1;alert(1)">'
SCRIPT = "<script>window.__xss=2</script>"
SVG = '<svg onload="window.__xss=3"></svg>'
T = TypeVar("T")


@pytest.fixture(scope="module")
def dashboard_server(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardProcess]:
    server = DashboardProcess(redis_server.url, tmp_path_factory.mktemp("xss") / "serve.log")
    try:
        yield server
    finally:
        server.stop()


class Watched:
    """A page whose dialogs and script errors are recorded (a dialog is dismissed at once)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        page.on("dialog", self._on_dialog)

    async def _on_dialog(self, dialog: object) -> None:
        self.dialogs.append(getattr(dialog, "message", "?"))
        await dialog.dismiss()  # type: ignore[attr-defined]

    async def assert_clean(self) -> None:
        assert await self.page.evaluate("window.__xss === undefined"), "injected script ran"
        assert self.dialogs == [], f"injected dialogs opened: {self.dialogs}"


@pytest.fixture
async def watched(browser: Browser) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport={"width": 1500, "height": 1400})
    page = await context.new_page()
    page.set_default_timeout(90_000)  # a first page on a loaded 2-core machine is slow
    try:
        yield Watched(page)
    finally:
        await context.close()


def hostile_event(user: UUID, step: int) -> SSEEvent:
    """Markup in every field a producer controls (ids, types and categories are validated)."""
    return SSEEvent(
        event_type=SSEEventType.AI_RESPONSE_CHUNK,
        user_id=user,
        data={
            PAYLOAD: PAYLOAD,
            "nested": {SCRIPT: SVG, "list": [PAYLOAD, {SVG: SCRIPT}]},
            f"{SVG}.{SCRIPT}": step,
            "plain": f"{PAYLOAD} {step}",
        },
    )


async def subscribed(redis: Redis, user: UUID) -> bool:
    channel = SSEChannelKeys().user_channel(user)
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count) >= 1


async def cell_texts(page: Page, table_class: str) -> list[str]:
    cells = page.locator(f".{table_class} .tabulator-row .tabulator-cell")
    return [text.strip() for text in await cells.all_inner_texts()]


async def header_texts(page: Page, table_class: str) -> list[str]:
    titles = page.locator(f".{table_class} .tabulator-col .tabulator-col-title")
    return [text.strip() for text in await titles.all_inner_texts()]


async def injected_elements(page: Page) -> int:
    """Elements the payloads would create, searched through every shadow root."""
    count: int = await page.evaluate(
        """() => {
            let found = 0;
            const walk = (root) => {
                found += root.querySelectorAll('img[src="x"], svg[onload], script:not([src])')
                    .length;
                for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
            };
            walk(document);
            return found;
        }"""
    )
    return count


async def baseline_inline_scripts(page: Page) -> int:
    """Inline scripts the page itself ships (Bokeh's bootstrap), to subtract from the search."""
    count: int = await page.evaluate("() => document.querySelectorAll('script:not([src])').length")
    return count


async def test_event_data_is_never_markup_in_feed_replay_or_hover(
    watched: Watched, dashboard_server: DashboardProcess, redis: Redis
) -> None:
    page = watched.page
    user = uuid4()
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    first = hostile_event(user, 0)
    await publisher.publish(first)  # retained before the page opens: replay shows it

    await page.goto(f"{dashboard_server.url}/?user={user}")
    await page.locator("[data-stat=total]").wait_for()
    await eventually(lambda: subscribed(redis, user), bool, "the live subscription")
    own_scripts = await baseline_inline_scripts(page)
    live = [hostile_event(user, step) for step in range(1, 4)]
    for item in live:
        await publisher.publish(item)

    # The live feed shows the payload as text.
    feed = await eventually(
        lambda: cell_texts(page, "live-feed"),
        lambda cells: sum(str(e.event_id) in cells for e in live) == len(live),
        "the hostile events in the live feed",
    )
    assert any(PAYLOAD in cell for cell in feed), feed

    # The replay table: every data key is a column title, every value a cell.
    field = page.locator(".replay-last-id input")
    await field.fill(str(first.event_id))
    await field.press("Enter")
    await page.get_by_role("button", name="Load missed events").click()
    await eventually(
        lambda: cell_texts(page, "replay-table"),
        lambda cells: all(str(e.event_id) in cells for e in live),
        "the hostile events in the replay table",
    )
    titles = await header_texts(page, "replay-table")
    assert f"data.{PAYLOAD}" in titles, titles
    assert f"data.nested.{SCRIPT}" in titles, titles
    cells = await cell_texts(page, "replay-table")
    assert PAYLOAD in cells, cells
    assert SVG in cells, cells

    # Tabulator's header tooltips are set with innerHTML: hover every data column's title.
    headers = page.locator(".replay-table .tabulator-col[tabulator-field^='data.']")
    tooltips = []
    for index in range(await headers.count()):
        # (dispatched: the wide table's body overlaps its scrolled header for real pointers)
        await headers.nth(index).dispatch_event("mousemove")
        tooltip = page.locator(".tabulator-tooltip")
        await tooltip.wait_for()
        tooltips.append((await tooltip.inner_text()).strip())
        # Read: now remove it, so the next title's tooltip is the one read next.
        await page.evaluate(
            "document.querySelectorAll('.tabulator-tooltip').forEach(e => e.remove())"
        )
    assert f"data.{PAYLOAD}" in tooltips, tooltips

    # Hover over both charts (their tooltips are drawn from the data sources).
    for canvas in await page.locator(".bk-Canvas, canvas").all():
        if await canvas.is_visible():
            box = await canvas.bounding_box()
            if box:
                for fx in (0.3, 0.6, 0.9):
                    await page.mouse.move(
                        box["x"] + box["width"] * fx, box["y"] + box["height"] / 2
                    )
                    await asyncio.sleep(0.05)

    await asyncio.sleep(0.5)  # an onerror handler fires asynchronously after the image fails
    await watched.assert_clean()
    assert await injected_elements(page) == own_scripts


async def test_a_hostile_theme_link_is_text_with_a_notice_never_a_traceback(
    watched: Watched, dashboard_server: DashboardProcess
) -> None:
    page = watched.page
    response = await page.goto(f"{dashboard_server.url}/?theme={quote(PAYLOAD)}")
    assert response is not None
    assert response.status == 200
    await page.locator("[data-stat=total]").wait_for()
    notice = page.locator(".link-notice")
    await notice.wait_for()
    text = await notice.evaluate("e => (e.shadowRoot || e).textContent")
    assert "theme" in text
    assert PAYLOAD in text  # quoted literally, so the operator sees what the link asked for
    assert "default" in text
    assert "dark" in text
    content = await page.content()
    assert "Traceback" not in content
    assert "KeyError" not in content
    assert ".py" not in await page.evaluate("document.body.innerText")
    await asyncio.sleep(0.5)
    await watched.assert_clean()


async def test_known_themes_still_apply_without_a_notice(
    watched: Watched, dashboard_server: DashboardProcess
) -> None:
    page = watched.page
    backgrounds = {}
    for theme in ("default", "dark"):
        await page.goto(f"{dashboard_server.url}/?theme={theme}")
        await page.locator("[data-stat=total]").wait_for()
        backgrounds[theme] = await page.evaluate(
            "() => getComputedStyle(document.body).backgroundColor"
        )
        assert await page.locator(".link-notice").count() == 0
    assert backgrounds["default"] == "rgb(255, 255, 255)"
    assert backgrounds["dark"] != backgrounds["default"]
    await watched.assert_clean()
