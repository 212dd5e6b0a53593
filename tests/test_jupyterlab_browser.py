"""The notebooks in a real JupyterLab page, offline: what an analyst sees after Run All.

A throwaway JupyterLab server (tests/support/jupyter.py) serves copies of the notebooks; headless
Chromium opens each one, runs all cells and checks the page: every Bokeh/Panel output rendered,
no traceback, no Panel/Bokeh console error, no request leaving the machine (they are refused
and recorded), and the inline dashboard keeps updating after Run All.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Page

from tests.support.jupyter import (
    BOKEH_OUTPUT,
    NOTEBOOKS,
    JupyterServer,
    PageLog,
    dashboard_total,
    open_notebook,
    run_all,
)

pytestmark = [pytest.mark.browser, pytest.mark.notebook, pytest.mark.timeout(600)]

BOKEH_OUTPUTS = {"01_explore_events.ipynb": 5, "02_live_dashboard.ipynb": 2}
LIVE_WINDOW_S = 10
PANEL_OR_BOKEH = ("bokeh", "panel", "tabulator", "unable to run")


@pytest.fixture(scope="module")
def jupyter() -> Iterator[JupyterServer]:
    with JupyterServer(sorted(NOTEBOOKS.glob("*.ipynb"))) as server:
        yield server


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def rendered(output: object) -> bool:
    """A Bokeh/Panel output drew something: a canvas, a table or a widget in its views."""
    return bool(
        await output.locator("canvas, .tabulator, input, button").count()  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("notebook", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
async def test_run_all_renders_every_output_offline(
    page: Page, jupyter: JupyterServer, notebook: str
) -> None:
    log = PageLog()
    await log.attach(page)
    await open_notebook(page, jupyter.page(notebook))
    await run_all(page)

    outputs = page.locator(".jp-OutputArea-output")
    texts = await outputs.all_inner_texts()
    assert not [t for t in texts if "BokehJS library is missing" in t]
    errors = await page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).all_inner_texts()
    assert not [e for e in errors if "Traceback" in e or "Error" in e], errors
    bokeh = page.locator(BOKEH_OUTPUT)
    assert await bokeh.count() == BOKEH_OUTPUTS.get(notebook, 0)
    for index in range(await bokeh.count()):
        output = bokeh.nth(index)
        deadline = time.monotonic() + 60
        while not await rendered(output):
            assert time.monotonic() < deadline, f"Bokeh/Panel output {index} stayed blank"
            await asyncio.sleep(0.5)
    assert log.external == []
    assert not [e for e in log.errors if any(w in e.lower() for w in PANEL_OR_BOKEH)], log.errors


async def test_the_inline_dashboard_stays_live_after_run_all(
    page: Page, jupyter: JupyterServer
) -> None:
    log = PageLog()
    await log.attach(page)
    await open_notebook(page, jupyter.page("02_live_dashboard.ipynb"))
    await run_all(page)
    first = await wait_for_total(page, lambda total: total > 0)
    later = await wait_for_total(page, lambda total: total > first, within=LIVE_WINDOW_S * 3)
    assert later > first
    assert not [e for e in log.errors if any(w in e.lower() for w in PANEL_OR_BOKEH)], log.errors


async def wait_for_total(page: Page, accept: object, within: float = 60) -> int:
    deadline = time.monotonic() + within
    while True:
        total = await dashboard_total(page)
        if total is not None and accept(total):  # type: ignore[operator]
            return total
        assert time.monotonic() < deadline, f"the dashboard total stayed at {total}"
        await asyncio.sleep(0.5)
