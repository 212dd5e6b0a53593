"""Take docs/dashboard.png and docs/inspector.png from a real ``ssewatch serve`` (bounded, ~1 min).

Serves the README's one line (embedded Redis with demo traffic) on a free loopback port, opens
it in headless Chromium, waits for some traffic, pauses the view so the shot is stable, clicks a
feed row and captures the inspector. Run from the repository root:

    python3 docs/screenshots.py            # writes docs/dashboard.png and docs/inspector.png
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH  # noqa: E402
from tests.support.dashboard import DashboardProcess  # noqa: E402

VIEWPORT = {"width": 1440, "height": 1000}
MIN_EVENTS = 60
DEADLINE_S = 90


async def total(page: Page) -> int:
    numbers = await page.locator("[data-stat=total] .number").all_inner_texts()
    digits = numbers[0].replace(",", "").strip() if numbers else ""
    return int(digits) if digits.isdigit() else -1


async def until(what: str, check: object) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def shoot(url: str, out: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            await page.goto(url)

            async def enough() -> bool:
                return await total(page) >= MIN_EVENTS

            await until(f"{MIN_EVENTS} events", enough)
            await page.get_by_role("button", name="Pause").click()
            await page.get_by_role("button", name="Resume").wait_for()
            await page.mouse.move(0, 0)
            await page.screenshot(path=out / "dashboard.png")

            pane = page.locator(".inspector-json textarea")

            async def inspecting() -> bool:
                if not await pane.is_visible():
                    row = page.locator(".live-feed .tabulator-row").nth(2)
                    cell = row.locator(".tabulator-cell[tabulator-field=event_type]")
                    try:
                        await cell.click(timeout=10_000)
                    except PlaywrightTimeout:  # a busy page: try again until the deadline
                        return False
                    await asyncio.sleep(1.0)
                return await pane.is_visible() and "event_id" in await pane.input_value()

            await until("the inspector", inspecting)
            await pane.scroll_into_view_if_needed()
            await page.evaluate("window.scrollBy(0, -120)")
            await page.mouse.move(0, 0)
            await page.screenshot(path=out / "inspector.png")
        finally:
            await browser.close()


def main() -> None:
    out = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        server = DashboardProcess(None, Path(tmp) / "serve.log")
        try:
            asyncio.run(shoot(server.url + "/", out))
        finally:
            server.stop()
    print(f"wrote {out / 'dashboard.png'} and {out / 'inspector.png'}")


if __name__ == "__main__":
    main()
