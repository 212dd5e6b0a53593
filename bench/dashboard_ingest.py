"""One dashboard session under a firehose: does the server stay under one core with flat memory?

A real ``ssewatch serve`` process (on a throwaway redis-server) serves one headless Chromium page
watching one user. A separate publisher process sends that user ``--rate`` events/s for
``--duration`` seconds (retention on). Measured:

* server CPU as process CPU seconds / wall seconds (``/proc/<pid>/stat``) and RSS over time;
* UI updates per second: Bokeh ``PATCH-DOC`` messages the page receives over its websocket
  (the server sends one per flush tick that changed something);
* events the page shows (its "Total events" indicator) against events published.

Baseline in the same run: the same server and page, idle (connected, no traffic) for
``--baseline`` seconds before the load.

Then the time to open a view: from ``page.goto`` to a filled view (its "Events" indicator
showing all of them, the feed full) for a user with ``--history`` (1,000) retained events in
the 15-minute window, against the same for a user with none (the page's own load and first
frame, measured alongside: the difference is the back-fill). Medians of ``--opens`` each.
Usage::

    python3 -m bench.dashboard_ingest [--duration 60] [--rate 5000] [--baseline 10]
                                      [--history 1000] [--opens 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from bench._harness import ROOT
from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH
from tests.support.redis_server import RedisServer, free_port

BENCH_USER = UUID("3c1b9a52-8d3e-4f61-a7c2-5e9d0b4f6a18")
WINDOW = 900  # the page watches 15 minutes: the whole run stays inside its window
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BATCH_SECONDS = 0.02


# -- the publisher (a child process, so its CPU is not the server's) ----------------------------


async def _publish(url: str, user: UUID, rate: float, duration: float) -> dict[str, Any]:
    from sse_core.connection import connect
    from sse_core.events import SSEEvent
    from sse_core.publisher import RedisSSEPublisher
    from sse_core.registry import SSEEventType

    types = list(SSEEventType)
    client = connect(url)
    publisher = RedisSSEPublisher(client, enable_retention=True)
    started = time.monotonic()
    sent = 0
    try:
        while (elapsed := time.monotonic() - started) < duration:
            due = min(int(rate * elapsed) + 1, int(rate * duration))
            count = min(due - sent, int(rate))  # catch up after a hiccup, at most 1 s at once
            if count > 0:
                events = [
                    SSEEvent(
                        event_type=types[(sent + i) % len(types)],
                        user_id=user,
                        data={"seq": sent + i, "account_id": "acct_123", "amount": 42.5},
                    )
                    for i in range(count)
                ]
                await publisher.publish_many(events)
                sent += count
            await asyncio.sleep(BATCH_SECONDS)
        wall = time.monotonic() - started
    finally:
        await client.aclose()
    usage = os.times()
    return {
        "published": publisher.stats.published,
        "failed": publisher.stats.failed,
        "wall": wall,
        "cpu": usage.user + usage.system,
    }


# -- measuring the server process ----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    cpu: float = 0.0
    rss: list[tuple[float, float]] = field(default_factory=list)  # (elapsed s, MB)
    updates: int = 0

    @property
    def cores(self) -> float:
        return self.cpu / self.seconds if self.seconds else 0.0

    @property
    def updates_per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0


class UpdateCounter:
    """Bokeh messages the page receives: one PATCH-DOC per batched document update."""

    def __init__(self) -> None:
        self.patches = 0

    def attach(self, websocket: Any) -> None:
        websocket.on("framereceived", self._frame)

    def _frame(self, payload: str | bytes) -> None:
        if isinstance(payload, str) and '"msgtype":"PATCH-DOC"' in payload.replace(" ", ""):
            self.patches += 1


def measure(
    name: str, seconds: float, pid: int, page: Any, counter: UpdateCounter, every: float
) -> Phase:
    """Sample the server while the page keeps running (Playwright pumps events in waits)."""
    phase = Phase(name)
    start_wall, start_cpu, start_updates = time.monotonic(), cpu_seconds(pid), counter.patches
    phase.rss.append((0.0, rss_mb(pid)))
    next_sample = every
    while (elapsed := time.monotonic() - start_wall) < seconds:
        page.wait_for_timeout(min(250, max(1, (seconds - elapsed) * 1000)))
        elapsed = time.monotonic() - start_wall
        if elapsed >= next_sample:
            phase.rss.append((elapsed, rss_mb(pid)))
            next_sample += every
    phase.seconds = time.monotonic() - start_wall
    phase.cpu = cpu_seconds(pid) - start_cpu
    phase.updates = counter.patches - start_updates
    phase.rss.append((phase.seconds, rss_mb(pid)))
    return phase


# -- the run ---------------------------------------------------------------------------------


def start_dashboard(redis_url: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSE_")}
    args = [sys.executable, "-m", "dashboard.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*args, "--redis-url", redis_url],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dashboard exited: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/", timeout=60):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("dashboard did not start")


def page_number(page: Any, stat: str) -> int:
    text = page.locator(f"[data-stat={stat}] .number").inner_text()
    return int(text.replace(",", ""))


def wait_subscribed(redis_url: str, user: UUID, deadline_s: float = 30) -> None:
    from redis import Redis

    from sse_core.keys import SSEChannelKeys

    client = Redis.from_url(redis_url)
    channel = SSEChannelKeys().user_channel(user)
    try:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if client.pubsub_numsub(channel)[0][1] >= 1:
                return
            time.sleep(0.1)
    finally:
        client.close()
    raise RuntimeError("the page never subscribed")


def run(args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    redis = RedisServer().start()
    log_path = Path(redis.dir) / "dashboard.log"
    dashboard, url = start_dashboard(redis.url, log_path)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1200})
            counter = UpdateCounter()
            page.on("websocket", counter.attach)
            page.goto(f"{url}/?user={BENCH_USER}&window={WINDOW}")
            page.locator("[data-stat=total]").wait_for()
            wait_subscribed(redis.url, BENCH_USER)
            page.wait_for_timeout(1000)  # let the first render settle

            idle = measure("idle", args.baseline, dashboard.pid, page, counter, every=5)

            publisher = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--publisher",
                    redis.url,
                    str(args.rate),
                    str(args.duration),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
            )
            load = measure("load", args.duration, dashboard.pid, page, counter, every=10)
            out, _ = publisher.communicate(timeout=args.duration + 60)
            published = json.loads(out)
            # The page catches up on what was still in flight when the publisher stopped.
            deadline = time.monotonic() + 30
            shown = page_number(page, "total")
            while shown < published["published"] and time.monotonic() < deadline:
                page.wait_for_timeout(250)
                shown = page_number(page, "total")
            dropped, gaps = page_number(page, "dropped"), page_number(page, "gaps")
            page.close()
            opens = measure_opens(browser, url, redis.url, args.history, args.opens)
            browser.close()
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=10)
        redis.cleanup()

    report(args, idle, load, published, shown, dropped, gaps)
    report_opens(args, opens)
    return 0


# -- opening a view with history -------------------------------------------------------------


def seed_history(redis_url: str, user: UUID, count: int) -> None:
    """``count`` events spread over the last 10 minutes (inside the window), oldest first."""
    from sse_core.connection import connect
    from sse_core.events import SSEEvent
    from sse_core.ids import uuid7
    from sse_core.publisher import RedisSSEPublisher
    from sse_core.registry import SSEEventType

    async def seed() -> None:
        client = connect(redis_url)
        publisher = RedisSSEPublisher(client, enable_retention=True, retention_max_len=count)
        now_ms = time.time_ns() // 1_000_000
        types = list(SSEEventType)
        events = []
        for i in range(count):
            ms = now_ms - 600_000 + i * 600_000 // count
            events.append(
                SSEEvent(
                    event_id=uuid7(now_ms=ms),
                    event_type=types[i % len(types)],
                    user_id=user,
                    occurred_at=dt.datetime.fromtimestamp(ms / 1000, dt.UTC),
                    data={"seq": i, "account_id": "acct_123", "amount": 42.5},
                )
            )
        try:
            await publisher.publish_many(events)
        finally:
            await client.aclose()

    # Playwright's sync API owns this thread's event loop: seed from another thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed()).result()


def time_to_filled(browser: Any, url: str, user: UUID, expected: int) -> float:
    """Seconds from navigation to the page showing ``expected`` events and a full feed."""
    page = browser.new_page(viewport={"width": 1500, "height": 1200})
    try:
        started = time.monotonic()
        page.goto(f"{url}/?user={user}&window={WINDOW}")
        total = page.locator("[data-stat=total] .number")
        # Tabulator renders only the visible rows: the caption says how many the feed holds.
        caption = page.locator(f'.coverage[data-shown="{min(expected, 50)}"]')
        deadline = started + 60
        while time.monotonic() < deadline:
            ready = total.count() and page.locator(".coverage[data-complete]").count()
            filled = ready and int(total.inner_text().replace(",", "")) == expected
            if filled and caption.count():
                return time.monotonic() - started
            page.wait_for_timeout(20)
        raise RuntimeError(f"the view of {user} never showed {expected} events")
    finally:
        page.close()


def measure_opens(
    browser: Any, url: str, redis_url: str, history: int, repeats: int
) -> dict[str, list[float]]:
    from uuid import uuid4

    times: dict[str, list[float]] = {"empty": [], "history": []}
    for _ in range(repeats):  # interleaved, so both see the same machine
        empty, filled = uuid4(), uuid4()
        seed_history(redis_url, filled, history)
        times["empty"].append(time_to_filled(browser, url, empty, 0))
        times["history"].append(time_to_filled(browser, url, filled, history))
    return times


def report_opens(args: argparse.Namespace, opens: dict[str, list[float]]) -> None:
    from statistics import median

    empty, filled = median(opens["empty"]), median(opens["history"])
    print()
    print(
        f"opening a view (15-minute window), median of {args.opens}: "
        f"{args.history:,} retained events -> filled view {filled:.2f} s; "
        f"baseline, a user with none -> first frame {empty:.2f} s; "
        f"back-fill adds {filled - empty:+.2f} s ({filled / empty:.2f}x)"
    )
    print(
        "  runs (s): history "
        + ", ".join(f"{t:.2f}" for t in opens["history"])
        + "; empty "
        + ", ".join(f"{t:.2f}" for t in opens["empty"])
    )


def report(
    args: argparse.Namespace,
    idle: Phase,
    load: Phase,
    published: dict[str, Any],
    shown: int,
    dropped: int,
    gaps: int,
) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"ssewatch dashboard ingest benchmark, {now}")
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs (shared, noisy); "
        "server: `ssewatch serve` on a throwaway redis-server; one headless Chromium page"
    )
    print(
        f"load: {args.rate:,.0f} events/s to the watched user for {args.duration:.0f} s "
        "(separate publisher process, retention on)"
    )
    print()
    warm = load.rss[len(load.rss) // 4][1]  # after warm-up: a quarter into the run
    rows = [
        ("", f"idle baseline ({idle.seconds:.0f} s)", f"under load ({load.seconds:.0f} s)"),
        ("server CPU (cpu s / wall s)", f"{idle.cores:.3f} core", f"{load.cores:.3f} core"),
        (
            "server RSS start -> end",
            f"{idle.rss[0][1]:.1f} -> {idle.rss[-1][1]:.1f} MB",
            f"{load.rss[0][1]:.1f} -> {load.rss[-1][1]:.1f} MB",
        ),
        (
            "UI updates (PATCH-DOC) per s",
            f"{idle.updates_per_second:.2f}",
            f"{load.updates_per_second:.2f}",
        ),
    ]
    for label, left, right in rows:
        print(f"{label:<30}{left:>24}{right:>28}")
    rate = published["published"] / published["wall"]
    print()
    print(
        f"events published: {published['published']:,} in {published['wall']:.1f} s "
        f"({rate:,.0f}/s, {published['failed']} failed; publisher CPU "
        f"{published['cpu'] / published['wall']:.2f} core)"
    )
    share = shown / published["published"] if published["published"] else 0.0
    print(f"events the page shows (Total events): {shown:,} ({share:.2%} of published)")
    print(f"page's dropped / gaps indicators: {dropped} / {gaps}")
    samples = ", ".join(f"{t:.0f}s:{mb:.1f}" for t, mb in load.rss)
    print(f"server RSS during load (MB): {samples}")
    growth = load.rss[-1][1] - warm
    print()
    print(
        f"verdict: server CPU {load.cores:.2f} core "
        f"({'<' if load.cores < 1 else '>='} 1 core; "
        f"{load.cores - idle.cores:+.2f} over idle); RSS after warm-up {warm:.1f} -> "
        f"{load.rss[-1][1]:.1f} MB ({growth:+.1f} MB); UI updates "
        f"{load.updates_per_second:.1f}/s at {rate:,.0f} events/s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--publisher"]:
        url, rate, duration = argv[1], float(argv[2]), float(argv[3])
        print(json.dumps(asyncio.run(_publish(url, BENCH_USER, rate, duration))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--rate", type=float, default=5000.0, help="events/s (5000)")
    parser.add_argument("--baseline", type=float, default=10.0, help="idle seconds (10)")
    parser.add_argument("--history", type=int, default=1000, help="retained events (1000)")
    parser.add_argument("--opens", type=int, default=5, help="views opened per case (5)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
