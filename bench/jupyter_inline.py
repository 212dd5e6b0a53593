"""The inline dashboard in a real JupyterLab page: time to render, UI updates/s, CPU.

A throwaway JupyterLab server (tests/support/jupyter.py) and headless Chromium, offline (every
non-local request refused). Measured in one run:

* baseline: notebook 02 open, kernel started and idle, for ``--baseline`` seconds;
* Run All → the dashboard's "Total events" figure on the page (seconds);
* live: ``--duration`` seconds with the demo at its default rate: Bokeh ``PATCH-DOC`` messages
  reaching the page over the kernel websocket per second, changes of the shown total, and CPU
  (process CPU seconds / wall seconds, from ``/proc``) of the kernel and of the whole Chromium
  process tree, next to the same figures for the idle baseline.

Usage::

    python3 -m bench.jupyter_inline [--duration 60] [--baseline 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from pathlib import Path

from playwright.async_api import Page, WebSocket, async_playwright

from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH
from tests.support.jupyter import (
    NOTEBOOKS,
    JupyterServer,
    PageLog,
    dashboard_total,
    open_notebook,
    run_all,
)

NOTEBOOK = "02_live_dashboard.ipynb"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            todo += children(current)
        except OSError:
            continue
    return pids


def tree_cpu(pid: int) -> float:
    total = 0.0
    for member in tree(pid):
        try:
            total += cpu_seconds(member)
        except OSError:
            continue
    return total


def find_pid(marker: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_text(errors="replace"):
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError(f"no process with {marker!r} in its command line")


async def shown_total(page: Page, within: float = 300) -> int:
    deadline = time.monotonic() + within
    while True:
        total = await dashboard_total(page)
        if total is not None:
            return total
        if time.monotonic() > deadline:
            raise RuntimeError("the dashboard never appeared on the page")
        await asyncio.sleep(0.2)


class Usage:
    """CPU of a fixed set of process trees over a wall-clock window."""

    def __init__(self, **roots: int) -> None:
        self.roots = roots
        self.start = time.monotonic()
        self.cpu = {name: tree_cpu(pid) for name, pid in roots.items()}

    def share(self) -> dict[str, float]:
        wall = time.monotonic() - self.start
        return {n: (tree_cpu(p) - self.cpu[n]) / wall for n, p in self.roots.items()}


async def main(duration: float, baseline: float) -> None:
    marker = f"--ssewatch-bench={secrets.token_hex(4)}"  # finds our Chromium among others'
    with JupyterServer([NOTEBOOKS / NOTEBOOK]) as server:
        assert server.process is not None
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM_PATH, args=[*CHROMIUM_ARGS, marker]
            )
            page = await browser.new_page(viewport={"width": 1600, "height": 1000})
            log = PageLog()
            await log.attach(page)
            patches = 0

            def count(ws: WebSocket) -> None:
                def frame(payload: str | bytes) -> None:
                    nonlocal patches
                    data = payload.encode() if isinstance(payload, str) else payload
                    patches += data.count(b"PATCH-DOC")

                ws.on("framereceived", frame)

            page.on("websocket", count)
            await open_notebook(page, server, NOTEBOOK)
            chromium = find_pid(marker)
            kernel = next(p for p in tree(server.process.pid) if p != server.process.pid)

            idle = Usage(kernel=kernel, browser=chromium)
            await asyncio.sleep(baseline)
            idle_cpu = idle.share()

            started = time.monotonic()
            await run_all(page)
            await shown_total(page)
            to_render = time.monotonic() - started

            live = Usage(kernel=kernel, browser=chromium)
            patches_before, changes, last = patches, 0, await dashboard_total(page)
            first_total = last
            end = time.monotonic() + duration
            while time.monotonic() < end:
                await asyncio.sleep(0.1)
                total = await dashboard_total(page)
                if total != last:
                    changes, last = changes + 1, total
            live_cpu = live.share()
            rate = (patches - patches_before) / duration
            await browser.close()

    print(f"Run All -> dashboard on the page: {to_render:.1f} s")
    print(f"live {duration:.0f} s: {rate:.1f} PATCH-DOC/s reach the page, the total changed")
    print(f"  {changes / duration:.1f} times/s ({first_total} -> {last})")
    for name in ("kernel", "browser"):
        print(
            f"{name:7} CPU: live {live_cpu[name]:.2f} core vs idle notebook "
            f"{idle_cpu[name]:.2f} core ({baseline:.0f} s baseline)"
        )
    print(f"requests refused (would leave the machine): {len(log.external)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--baseline", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.duration, args.baseline))
