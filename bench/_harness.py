"""Shared pieces of the core benchmarks: a throwaway server, clients per parser, sample events,
a publisher process, statistics and the printed header.

Every figure is printed next to a baseline measured in the same run, because the machines are
shared and noisy: only ratios between neighbouring measurements mean anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from uuid import UUID

import hiredis
import pydantic
import redis
import redis.utils
from redis.asyncio import Redis

import sse_core
from sse_core.codec import encode_payload
from sse_core.events import SSEEvent
from sse_core.publisher import RedisSSEPublisher
from sse_core.registry import SSEEventType
from tests.support.redis_server import RedisServer

PAYLOAD_BYTES = 300
BENCH_USER = UUID("5f0c3b7e-2a61-4d8b-9c4e-7a1d2e3f4b5c")

# The checkout measured: run the scripts from the repo root as `python3 -m bench.<name>`.
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def bench_server() -> Iterator[RedisServer]:
    """A private redis-server whose pub/sub output buffer is unbounded.

    The default pub/sub client limit (32 MB hard) would disconnect a subscriber that a fast
    publisher has put a few hundred thousand messages behind; the benchmarks want to measure how
    fast it catches up instead.
    """
    # A SIGTERM (e.g. from `timeout`) must still stop the server: turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = RedisServer().start()
    try:
        redis_cli(server, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0")
        yield server
    finally:
        server.cleanup()


def redis_cli(server: RedisServer, *args: str) -> str:
    result = subprocess.run(
        ["redis-cli", "-p", str(server.port), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.strip()


def client(url: str, **kwargs: Any) -> Redis:
    return Redis.from_url(url, **kwargs)


def sample_event(i: int, size: int = PAYLOAD_BYTES, user_id: UUID = BENCH_USER) -> SSEEvent:
    """A realistic sync-completed event whose pub/sub payload is ``size`` bytes long."""
    data: dict[str, Any] = {
        "provider": "plaid",
        "account_id": f"acc_{i:010d}",
        "transactions": i % 97,
        "duration_ms": 100 + i % 900,
        "cursor": "",
    }
    kind = SSEEventType.SYNC_TRANSACTIONS_COMPLETED
    event = SSEEvent(event_type=kind, user_id=user_id, data=data)
    missing = size - len(event.model_dump_json())
    if missing > 0:
        data["cursor"] = "c" * missing
        event = event.model_copy(update={"data": data})
    return event


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a latency that happened)."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def spread(values: Sequence[float]) -> str:
    """min..max of the repeats, so the reader can see how noisy a median is."""
    return f"[{min(values):,.0f}..{max(values):,.0f}]"


def header(title: str, server: RedisServer) -> None:
    version = redis_cli(server, "INFO", "server").split("redis_version:")[1].split()[0]
    print(f"== {title} ==")
    print(
        f"date {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} | {os.cpu_count()} cores "
        f"({_cpu_model()}) | load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"python {platform.python_version()} | redis-server {version} on loopback | "
        f"redis-py {redis.__version__} (HIREDIS_AVAILABLE={redis.utils.HIREDIS_AVAILABLE}, "
        f"hiredis {hiredis.__version__}) | pydantic {pydantic.__version__}"
    )
    print(f"sse_core from {Path(sse_core.__file__).parent} at {checkout()}")


def checkout() -> str:
    """The commit measured, marked when sse_core has uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "sse_core")
    return commit + (" + local sse_core changes" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Budget:
    """A wall-clock bound for a whole script: repeats stop (after the first) once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def spent(self) -> bool:
        return self.left() <= 0


# -- a publisher in another process -------------------------------------------------------------


class PublisherProcess:
    """Publishes pre-encoded payloads from a separate process, so it never competes with the
    measured consumer for its event loop (only, on 2 cores, for the machine).

    ``burst(n)`` pipelines ``n`` PUBLISH commands as fast as the server takes them and returns
    the seconds it took; ``paced(n, rate)`` publishes events one by one at ``rate``/s, each
    stamped with ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, comparable across processes)
    taken just before its publish call.
    """

    def __init__(self, url: str, channel: str, payloads: Sequence[bytes]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_publisher_main, args=(url, channel, list(payloads), child), daemon=True
        )
        self._process.start()
        self._conn.recv()  # ready

    def burst(self, count: int, batch: int = 1000) -> float:
        self._conn.send(("burst", count, batch))
        seconds: float = self._conn.recv()
        return seconds

    def start_burst(self, count: int, batch: int = 1000) -> None:
        self._conn.send(("burst", count, batch))

    def start_paced(self, count: int, rate: float, mode: str) -> None:
        """``mode``: "bare" (plain PUBLISH), "publisher" or "retention" (RedisSSEPublisher)."""
        self._conn.send(("paced", count, rate, mode))

    def result(self, timeout: float = 120.0) -> float:
        if not self._conn.poll(timeout):
            raise TimeoutError("publisher process did not finish in time")
        seconds: float = self._conn.recv()
        return seconds

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> PublisherProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _publisher_main(url: str, channel: str, payloads: list[bytes], conn: Connection) -> None:
    sync = redis.Redis.from_url(url)
    conn.send("ready")
    while (command := conn.recv()) is not None:
        started = time.perf_counter()
        if command[0] == "burst":
            _, count, batch = command
            source = itertools.cycle(payloads)
            for offset in range(0, count, batch):
                pipe = sync.pipeline(transaction=False)
                for _ in range(min(batch, count - offset)):
                    pipe.publish(channel, next(source))
                pipe.execute()
        else:
            _, count, rate, mode = command
            asyncio.run(_paced(url, channel, count, rate, mode))
        conn.send(time.perf_counter() - started)


async def _paced(url: str, channel: str, count: int, rate: float, mode: str) -> None:
    """One publish per event at ``rate``/s, stamped with the clock just before the publish."""
    async with Redis.from_url(url) as redis_client:
        publisher = RedisSSEPublisher(
            redis_client, enable_retention=mode == "retention", retention_max_len=10_000
        )
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            base = sample_event(i, size=PAYLOAD_BYTES - 30)
            stamped = {**base.data, "sent_ns": time.perf_counter_ns()}
            event = base.model_copy(update={"data": stamped})
            if mode == "bare":
                await redis_client.publish(channel, encode_payload(event))
            else:
                await publisher.publish(event)
