"""HTTP SSE fan-out: N concurrent ``GET /events`` connections on one server process.

Measures, for ssewatch's endpoint (every connection shares the process's one Redis pub/sub
connection through the hub) and for a naive baseline written here (one Redis pub/sub
connection per HTTP client, each decoding every message itself):

- Redis connections the server holds (``CLIENT LIST``, by client name) and how many are pub/sub;
- server memory per connection (RSS delta / N, RSS from /proc);
- time for one broadcast to reach all N clients (p50/p99 over several broadcasts), and the
  per-connection delivery latency (p50/p99 over all connections and broadcasts);
- that every subscription is released once the clients disconnect.

Everything runs on 127.0.0.1: a throwaway redis-server, the server under test in its own process
(a fresh one per mode, so RSS deltas are comparable), and this process as the clients (raw
asyncio sockets, so the client side stays cheap) and the publisher. Bounded: N connections,
``--broadcasts`` broadcasts, every wait has a deadline.

    python3 -m bench.http_fanout [--connections 1000] [--broadcasts 40] [--naive-connections N]
                                 [--asgi]

``--asgi`` also runs the shared endpoint as a Starlette app under uvicorn (``asgi`` row).

``FANOUT_GC_LOG=1`` prints each full garbage collection of the server processes and the start of
each broadcast, on one clock (``time.monotonic``), so a collection inside a broadcast shows.

The naive baseline holds one Redis connection per client, so it runs with at most
``--naive-connections`` (default: as many as the shared mode, capped at 2,000: redis-server
refuses clients past 10,000); with 10,000 shared connections it is the 2,000-connection
reference, run in the same invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from tornado.iostream import StreamClosedError
from tornado.web import Application, RequestHandler

from sse_core import RedisSSEPublisher, SSEEvent, SSEEventType, SSESettings
from sse_core.codec import decode_payload
from sse_core.http import SSE_HEADERS, EventStreamEndpoint, RequestRejected, TokenSigner
from sse_core.http.tornado import event_routes
from sse_core.keys import SSEChannelKeys
from sse_core.wire import format_comment, format_retry
from tests.support.redis_server import RedisServer, free_port

SERVER_CLIENT_NAME = "bench-sse-server"
SECRET = "bench-secret-" + "x" * 32
BROADCAST_USER = UUID(int=0)
MODES = ("shared", "naive", "asgi")


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


# -- the server process ------------------------------------------------------------------------


class NaiveHandler(RequestHandler):
    """The baseline: same checks and wire format, but its own pub/sub connection per client."""

    def initialize(self, redis: Redis, endpoint: EventStreamEndpoint) -> None:
        self.redis = redis
        self.endpoint = endpoint
        self.task: asyncio.Task[None] | None = None

    async def get(self) -> None:
        try:
            request = self.endpoint.check(
                {}, authorization=self.request.headers.get("Authorization")
            )
        except RequestRejected as rejected:
            self.set_status(rejected.status)
            self.finish(rejected.body())
            return
        for name, value in SSE_HEADERS.items():
            self.set_header(name, value)
        self.task = asyncio.ensure_future(self.pump(request.user_id))
        await asyncio.wait({self.task})
        if not self.task.cancelled() and self.task.exception() is not None:
            raise SystemExit(f"baseline handler failed: {self.task.exception()!r}")

    async def pump(self, user_id: UUID) -> None:
        keys = SSEChannelKeys()
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.user_channel(user_id), keys.broadcast_channel())
            self.write(format_retry(self.endpoint.options.retry_ms))
            await self.flush()
            while True:
                message = await pubsub.get_message(timeout=self.endpoint.options.heartbeat_seconds)
                if message is None:
                    self.write(format_comment("ping"))
                else:
                    self.write(decode_payload(message["data"]).to_sse_format())
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def on_connection_close(self) -> None:
        if self.task is not None:
            self.task.cancel()


def log_full_collections() -> None:
    """Print each of the server's gen-2 collections and its duration to stderr.

    With thousands of connections a full collection walks every connection's objects; one
    landing inside a broadcast is that broadcast's p99.
    """
    import gc

    started: list[float] = [0.0]

    def log(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = (time.perf_counter() - started[0]) * 1000
        at = time.monotonic()
        print(f"server gc gen2 at {at:.3f}: {took:.0f} ms", file=sys.stderr, flush=True)

    gc.callbacks.append(log)


async def serve(mode: str, port: int, redis_url: str) -> None:
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    # redis-py caps a pool at 100 connections by default; the baseline needs one per client.
    redis = Redis.from_url(redis_url, client_name=SERVER_CLIENT_NAME, max_connections=10_000)
    settings = SSESettings(token_secret=SECRET, heartbeat_seconds=30)
    if mode == "shared":
        routes: list[Any] = event_routes(redis, settings)
    else:
        endpoint = EventStreamEndpoint(redis, settings)
        routes = [("/events", NaiveHandler, {"redis": redis, "endpoint": endpoint})]
    if os.environ.get("FANOUT_GC_LOG"):
        log_full_collections()
    if mode == "asgi":  # the same endpoint through Starlette under uvicorn
        await serve_asgi(redis, settings, port)
        return
    server = HTTPServer(Application(routes))
    server.add_sockets(bind_sockets(port, "127.0.0.1", backlog=1024))
    print("READY", flush=True)
    await asyncio.Event().wait()


async def serve_asgi(redis: Redis, settings: SSESettings, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette

    from sse_core.http.asgi import event_route

    app = Starlette(routes=[event_route(redis, settings)])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", backlog=1024
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    print("READY", flush=True)
    await task


# -- the clients ---------------------------------------------------------------------------------


@dataclass
class Fanout:
    """Arrival times of the current broadcast, per connection."""

    size: int
    marker: bytes = b""
    arrivals: dict[int, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, marker: bytes) -> None:
        self.marker, self.arrivals = marker, {}
        self.done.clear()

    def saw(self, conn: int, now: float) -> None:
        if conn not in self.arrivals:
            self.arrivals[conn] = now
            if len(self.arrivals) == self.size:
                self.done.set()


class SSEClient(asyncio.Protocol):
    """One connection: notes when the expected event id first appears in its byte stream."""

    def __init__(self, index: int, fanout: Fanout) -> None:
        self.index = index
        self.fanout = fanout
        self.tail = b""
        self.headers = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        window = self.tail + data
        if not self.headers.done() and b"\r\n\r\n" in window:
            self.headers.set_result(window.split(b"\r\n", 1)[0])
        marker = self.fanout.marker
        if marker and marker in window:
            self.fanout.saw(self.index, now)
        self.tail = window[-64:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def open_clients(
    port: int, tokens: list[str], fanout: Fanout
) -> list[tuple[asyncio.Transport, SSEClient]]:
    loop = asyncio.get_running_loop()
    opened: list[tuple[asyncio.Transport, SSEClient]] = []

    async def one(i: int) -> None:
        transport, proto = await loop.create_connection(
            lambda: SSEClient(i, fanout), "127.0.0.1", port
        )
        transport.write(
            f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {tokens[i]}\r\n\r\n".encode()
        )
        status = await asyncio.wait_for(proto.headers, 30)
        if b" 200 " not in status:
            raise RuntimeError(f"connection {i}: {status!r}")
        opened.append((transport, proto))

    for start in range(0, len(tokens), 100):  # batches: stay within the listen backlog
        await asyncio.gather(*(one(i) for i in range(start, min(start + 100, len(tokens)))))
    return opened


# -- measuring ----------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def server_connections(admin: Redis) -> tuple[int, int]:
    """(all, pub/sub) connections the server process holds, from ``CLIENT LIST``."""
    clients = [c for c in await admin.client_list() if c.get("name") == SERVER_CLIENT_NAME]
    pubsub = [c for c in clients if int(c.get("sub", 0)) + int(c.get("psub", 0)) > 0]
    return len(clients), len(pubsub)


async def wait_for(check: Any, what: str, within: float = 60.0) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Result:
    mode: str
    n: int
    connect_s: float
    redis_conns: int
    pubsub_conns: int
    rss_delta_kb: int
    all_ms: list[float]
    each_ms: list[float]
    released_s: float


async def run_mode(mode: str, n: int, broadcasts: int, redis_url: str) -> Result:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *[
            sys.executable,
            "-m",
            "bench.http_fanout",
            "--serve",
            mode,
            "--port",
            str(port),
            "--redis-url",
            redis_url,
        ],
        stdout=asyncio.subprocess.PIPE,
    )
    admin = Redis.from_url(redis_url, decode_responses=True)
    publisher = RedisSSEPublisher(Redis.from_url(redis_url), enable_retention=True)
    keys = SSEChannelKeys()
    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 60)
        if ready.strip() != b"READY":
            raise RuntimeError(f"server did not start: {ready!r}")
        await asyncio.sleep(0.5)
        base_rss = rss_kb(proc.pid)

        users = [UUID(int=(1 << 64) + i) for i in range(n)]
        signer = TokenSigner(SECRET)
        tokens = [signer.mint(u, 3600) for u in users]
        fanout = Fanout(n)
        started = time.monotonic()
        clients = await open_clients(port, tokens, fanout)
        channels = [keys.user_channel(u) for u in users]

        async def all_subscribed() -> bool:
            counts = await admin.pubsub_numsub(*channels)
            return all(int(c) >= 1 for _, c in counts)

        await wait_for(all_subscribed, "every subscription")
        connect_s = time.monotonic() - started
        await asyncio.sleep(1.0)  # let the server settle before reading its memory
        rss_delta = rss_kb(proc.pid) - base_rss
        redis_conns, pubsub_conns = await server_connections(admin)

        all_ms: list[float] = []
        each_ms: list[float] = []
        for seq in range(broadcasts):
            event = SSEEvent(
                event_type=SSEEventType.PORTFOLIO_BALANCE_UPDATED,
                user_id=BROADCAST_USER,
                data={"seq": seq, "note": "market open", "balance": 1234.5},
            )
            fanout.expect(f"id: {event.event_id}".encode())
            sent = time.monotonic()
            if os.environ.get("FANOUT_GC_LOG"):
                print(f"broadcast {seq} at {sent:.3f}", file=sys.stderr, flush=True)
            await publisher.broadcast(event)
            await asyncio.wait_for(fanout.done.wait(), 30)
            arrivals = [t - sent for t in fanout.arrivals.values()]
            all_ms.append(max(arrivals) * 1000)
            each_ms.extend(a * 1000 for a in arrivals)
            await asyncio.sleep(0.05)

        for transport, _ in clients:
            transport.close()

        async def released() -> bool:
            return (await server_connections(admin))[1] == 0

        released_s = await wait_for(released, "subscriptions released", within=30)
        return Result(
            mode, n, connect_s, redis_conns, pubsub_conns, rss_delta, all_ms, each_ms, released_s
        )
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
        await admin.aclose()
        await publisher._redis.aclose()


def report(broadcasts: int, results: list[Result]) -> None:
    sizes = " / ".join(f"{r.n:,} ({r.mode})" for r in results)
    print(
        f"ssewatch bench http_fanout: {sizes} SSE connections on one server process "
        f"(Tornado; asgi: uvicorn), {broadcasts} broadcasts"
    )
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs (shared), loopback; "
        "clients + publisher in a separate process (raw asyncio sockets)"
    )
    header = (
        f"{'mode':<7} {'conns':>6} {'redis conns':>11} {'pub/sub':>8} {'KB/conn':>8} "
        f"{'connect s':>9} "
        f"{'all p50 ms':>10} {'all p99 ms':>10} {'one p50 ms':>10} {'one p99 ms':>10} "
        f"{'released s':>10}"
    )
    print(header)
    for r in results:
        print(
            f"{r.mode:<7} {r.n:>6} {r.redis_conns:>11} {r.pubsub_conns:>8} "
            f"{r.rss_delta_kb / r.n:>8.1f} "
            f"{r.connect_s:>9.2f} "
            f"{statistics.median(r.all_ms):>10.1f} {pct(r.all_ms, 0.99):>10.1f} "
            f"{statistics.median(r.each_ms):>10.1f} {pct(r.each_ms, 0.99):>10.1f} "
            f"{r.released_s:>10.2f}"
        )
    shared, naive = results[:2]
    p50 = statistics.median(naive.all_ms) / statistics.median(shared.all_ms)
    per_conn = (naive.rss_delta_kb / naive.n) / max(shared.rss_delta_kb / shared.n, 0.001)
    print(
        f"naive ({naive.n:,}) / shared ({shared.n:,}): "
        f"redis connections x{naive.redis_conns / max(shared.redis_conns, 1):.0f}, "
        f"memory/conn x{per_conn:.2f}, "
        f"broadcast-to-all p50 x{p50:.2f}, "
        f"p99 x{pct(naive.all_ms, 0.99) / pct(shared.all_ms, 0.99):.2f}"
    )
    verdict = "PASS" if pct(shared.all_ms, 0.99) <= 1000 else "FAIL"
    print(f"one broadcast to all {shared.n:,} shared connections, p99 <= 1 s: {verdict}")
    for other in results[2:]:
        print(
            f"{other.mode} ({other.n:,}) / shared, Tornado ({shared.n:,}): broadcast-to-all "
            f"p50 x{statistics.median(other.all_ms) / statistics.median(shared.all_ms):.2f}, "
            f"p99 x{pct(other.all_ms, 0.99) / pct(shared.all_ms, 0.99):.2f}"
        )
    print(
        "('all' = time until the last of the N clients has the broadcast; 'one' = each "
        "connection's own latency; 'released' = time until the server holds no pub/sub "
        "connection after the clients hung up)"
    )


async def drive(n: int, naive_n: int, broadcasts: int, asgi: bool) -> None:
    raise_fd_limit(n * 2 + 256)
    server = RedisServer().start()
    try:
        results = [
            await run_mode("shared", n, broadcasts, server.url),
            await run_mode("naive", naive_n, broadcasts, server.url),
        ]
        if asgi:
            results.append(await run_mode("asgi", n, broadcasts, server.url))
    finally:
        server.cleanup()
    report(broadcasts, results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--broadcasts", type=int, default=40)
    parser.add_argument("--naive-connections", type=int, default=None)
    parser.add_argument(
        "--asgi", action="store_true", help="also serve the shared endpoint through uvicorn"
    )
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    naive_n = args.naive_connections or min(args.connections, 2000)
    if not 1 <= args.connections <= 10_000 or not 1 <= args.broadcasts <= 500:
        parser.error("keep it bounded: 1..10,000 connections, 1..500 broadcasts")
    if not 1 <= naive_n <= 2000:
        parser.error("the naive baseline holds a Redis connection per client: 1..2,000")
    raise_fd_limit(args.connections * 3 + 256)
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.redis_url))
    else:
        asyncio.run(drive(args.connections, naive_n, args.broadcasts, args.asgi))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
