"""The notebooks in a real JupyterLab page (and the live dashboard in Notebook 7), offline: what
an analyst sees after Run All.

A throwaway Jupyter server (tests/support/jupyter.py) serves copies of the notebooks; headless
Chromium opens each one, runs all cells and checks the page: every Bokeh/Panel output rendered,
no traceback, no Panel/Bokeh console error, no request leaving the machine (they are refused
and recorded), and the inline dashboard keeps updating after Run All.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from playwright.async_api import Browser, Page

from tests.support.jupyter import (
    NOTEBOOKS,
    OUTPUTS_JS,
    JupyterServer,
    PageLog,
    dashboard_total,
    open_notebook,
    run_all,
)

# Above the sum of the steps' own deadlines (open, Run All, render, live), so a slow machine
# fails with the step that was slow rather than pytest-timeout's bare stack dump.
pytestmark = [pytest.mark.browser, pytest.mark.notebook, pytest.mark.timeout(900)]

DASHBOARD = "02_live_dashboard.ipynb"
# Outputs drawn by Bokeh or Panel: 01's five charts; 02's dashboard and its replay panel.
BOKEH_OUTPUTS = {"01_explore_events.ipynb": 5, DASHBOARD: 2, "03_replay_after_outage.ipynb": 0}
RENDER_DEADLINE_S = 60
LIVE_DEADLINE_S = 30
PANEL_OR_BOKEH = ("bokeh", "panel", "tabulator", "unable to run", "isn't known")
# Every notebook in JupyterLab; the live dashboard in Notebook 7 too (its page is the other
# front end users open notebooks in).
RUNS = [("lab", name) for name in sorted(BOKEH_OUTPUTS)] + [("notebooks", DASHBOARD)]


@pytest.fixture(scope="module")
def jupyter() -> Iterator[JupyterServer]:
    with JupyterServer(sorted(NOTEBOOKS.glob("*.ipynb"))) as server:
        yield server


@pytest.fixture
async def page(browser: Browser, jupyter: JupyterServer) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        yield await context.new_page()
    finally:
        await context.close()
        jupyter.shutdown_kernels()


def test_every_notebook_is_covered() -> None:
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == set(BOKEH_OUTPUTS)


async def eventually_total(page: Page, accept: Callable[[int], bool]) -> int:
    deadline = time.monotonic() + LIVE_DEADLINE_S
    while True:
        total = await dashboard_total(page)
        if total is not None and accept(total):
            return total
        assert time.monotonic() < deadline, f"the dashboard total stayed at {total}"
        await asyncio.sleep(0.5)


@pytest.mark.parametrize(("ui", "notebook"), RUNS, ids=[f"{u}-{n}" for u, n in RUNS])
async def test_run_all_renders_every_output_offline(
    page: Page, jupyter: JupyterServer, ui: str, notebook: str
) -> None:
    log = PageLog()
    await log.attach(page)
    await open_notebook(page, jupyter, notebook, ui)
    await run_all(page)

    deadline = time.monotonic() + RENDER_DEADLINE_S
    while True:
        outputs = await page.evaluate(OUTPUTS_JS)
        bokeh = [o for o in outputs if o["bokeh"]]
        blank = [index for index, o in enumerate(bokeh) if not o["drawn"]]
        if not blank or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert len(bokeh) == BOKEH_OUTPUTS[notebook]
    assert blank == [], f"Bokeh/Panel outputs {blank} stayed blank"
    assert not [o for o in outputs if "BokehJS library is missing" in o["text"]]
    errors = [o["text"] for o in outputs if o["stderr"]]
    assert not [e for e in errors if "Traceback" in e or "Error" in e], errors

    if notebook == DASHBOARD:
        # Run All leaves it live: the figure the page shows keeps climbing.
        first = await eventually_total(page, lambda total: total > 0)
        await eventually_total(page, lambda total: total > first)
    assert log.external == []
    assert not [e for e in log.errors if any(w in e.lower() for w in PANEL_OR_BOKEH)], log.errors
