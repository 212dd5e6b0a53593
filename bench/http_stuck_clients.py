"""HTTP SSE clients that stop reading: N concurrent ``GET /events``, S of them stuck, R events/s.

Two runs in one go, each on a fresh server process (``event_routes`` on Tornado, as in
``ssewatch serve``) against the same throwaway redis-server:

- ``baseline``: N healthy clients;
- ``stuck``: N - S healthy clients and S that stop reading (raw sockets with a small
  ``SO_RCVBUF``, never read, so the server's writes to them really block in the kernel).

Events are published at R/s, round-robin over the N users (each user gets R/N per second, with
a payload of P bytes), for D seconds. Per run it reports:

- server RSS (from /proc): before the clients connect, peak while events flow, at the end;
- healthy clients: events missed (published for their user, never received), duplicates and
  ``stream-reset`` frames, checked by event id once publishing has stopped;
- stuck clients: how many the server closed (their Redis subscription released, ``PUBSUB
  NUMSUB`` 0) and when (seconds after publishing began), and the server's own log lines saying
  it closed a client that took no data for the send timeout.

The send timeout is shortened for the benchmark (``--send-timeout``, default 5 s; production
default ``SSE_SEND_TIMEOUT_SECONDS`` is 30 s) so the run stays short. Loopback only, bounded:
every wait has a deadline.

    python3 -m bench.http_stuck_clients [--connections 1000] [--stuck 100] [--rate 2000]
                                        [--seconds 60] [--payload 2000] [--send-timeout 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import resource
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from bench._harness import bench_server
from sse_core import RedisSSEPublisher, SSEEvent, SSEEventType, SSESettings
from sse_core.http import TokenSigner
from sse_core.http.tornado import event_routes
from sse_core.keys import SSEChannelKeys
from tests.support.redis_server import free_port
from tests.support.stuck_client import events_request, stuck_client

SECRET = "bench-secret-" + "x" * 32
STUCK_LINE = "STUCK-CLOSED"
TICK = 0.05  # publish a batch every 50 ms
SERVER_SNDBUF = 65536


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


# -- the server process ------------------------------------------------------------------------


class _StuckReporter(logging.Handler):
    """Prints one line per connection the endpoint closed for taking no data."""

    def emit(self, record: logging.LogRecord) -> None:
        if "took no data" in record.getMessage():
            print(f"{STUCK_LINE} {time.time():.3f}", flush=True)


class _SmallSendBuffers(HTTPServer):
    """Server sockets with a 64 KiB send buffer instead of loopback's autotuned ~4 MB, so a
    client that stops reading blocks the server's writes within seconds (as behind a proxy)."""

    def handle_stream(self, stream: Any, address: Any) -> None:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVER_SNDBUF)
        super().handle_stream(stream, address)


async def serve(port: int, redis_url: str, send_timeout: float) -> None:
    logger = logging.getLogger("sse_core.http.tornado")
    logger.setLevel(logging.INFO)
    logger.addHandler(_StuckReporter())
    redis = Redis.from_url(redis_url)
    settings = SSESettings(
        token_secret=SECRET, heartbeat_seconds=30, send_timeout_seconds=send_timeout
    )
    server = _SmallSendBuffers(Application(event_routes(redis, settings)))
    server.add_sockets(bind_sockets(port, "127.0.0.1", backlog=1024))
    print("READY", flush=True)
    await asyncio.Event().wait()


# -- the clients ---------------------------------------------------------------------------------


class HealthyClient(asyncio.Protocol):
    """Reads everything; keeps the event ids and stream-resets it saw."""

    def __init__(self) -> None:
        self.buffer = b""
        self.ids: list[bytes] = []
        self.resets = 0
        self.headers = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.headers.done() and b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.headers.set_result(head.split(b"\r\n", 1)[0])
        if not self.headers.done():
            return
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"id: "):
                self.ids.append(line[4:].strip())
            elif line.startswith(b"event: stream-reset"):
                self.resets += 1


async def open_healthy(
    port: int, tokens: list[str]
) -> list[tuple[asyncio.Transport, HealthyClient]]:
    """One client per token, in the tokens' order (so client k reads user k's events)."""
    loop = asyncio.get_running_loop()

    async def one(token: str) -> tuple[asyncio.Transport, HealthyClient]:
        transport, proto = await loop.create_connection(HealthyClient, "127.0.0.1", port)
        transport.write(events_request(port, token))
        status = await asyncio.wait_for(proto.headers, 60)
        if b" 200 " not in status:
            raise RuntimeError(f"healthy client: {status!r}")
        return transport, proto

    opened: list[tuple[asyncio.Transport, HealthyClient]] = []
    for start in range(0, len(tokens), 100):  # batches: stay within the listen backlog
        opened += await asyncio.gather(*(one(t) for t in tokens[start : start + 100]))
    return opened


# -- measuring ----------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def wait_for(check: Any, what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Result:
    mode: str
    healthy: int
    stuck: int
    published: int = 0
    rate: float = 0.0
    rss_base: float = 0.0
    rss_peak: float = 0.0
    rss_end: float = 0.0
    missed: int = 0
    duplicates: int = 0
    resets: int = 0
    stuck_closed: int = 0
    closed_at: list[float] = field(default_factory=list)
    server_lines: int = 0


async def run(
    mode: str,
    n: int,
    stuck: int,
    rate: int,
    seconds: float,
    payload: int,
    send_timeout: float,
    redis_url: str,
) -> Result:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *[
            sys.executable,
            "-m",
            "bench.http_stuck_clients",
            "--serve",
            "--port",
            str(port),
            "--redis-url",
            redis_url,
        ],
        *["--send-timeout", str(send_timeout)],
        stdout=asyncio.subprocess.PIPE,
    )
    admin = Redis.from_url(redis_url, decode_responses=True)
    client = Redis.from_url(redis_url)
    publisher = RedisSSEPublisher(client, enable_retention=True, raise_errors=True)
    keys = SSEChannelKeys()
    result = Result(mode, n - stuck, stuck)
    server_lines: list[float] = []
    sockets: list[socket.socket] = []
    healthy: list[tuple[asyncio.Transport, HealthyClient]] = []

    async def read_server() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            if line.startswith(STUCK_LINE.encode()):
                server_lines.append(float(line.split()[1]))

    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 60)
        if ready.strip() != b"READY":
            raise RuntimeError(f"server did not start: {ready!r}")
        reader = asyncio.ensure_future(read_server())
        await asyncio.sleep(0.5)
        result.rss_base = rss_mb(proc.pid)

        users = [UUID(int=(1 << 64) + i) for i in range(n)]
        signer = TokenSigner(SECRET)
        tokens = [signer.mint(u, 3600) for u in users]
        stuck_users = users[:stuck]
        for token in tokens[:stuck]:
            sockets.append(await stuck_client(port, events_request(port, token)))
        healthy = await open_healthy(port, tokens[stuck:])
        channels = [keys.user_channel(u) for u in users]

        async def all_subscribed() -> bool:
            counts = await admin.pubsub_numsub(*channels)
            return all(int(c) >= 1 for _, c in counts)

        await wait_for(all_subscribed, "every subscription", 120)

        expected: dict[int, list[bytes]] = {i: [] for i in range(n)}
        stuck_channels = [keys.user_channel(u) for u in stuck_users]
        open_stuck = set(stuck_channels)
        body = "p" * payload
        per_tick = max(1, round(rate * TICK))
        started = time.monotonic()
        started_wall = time.time()
        next_tick = started
        seq = 0
        peak = 0.0
        last_check = 0.0
        while time.monotonic() - started < seconds:
            batch = []
            for _ in range(per_tick):
                i = seq % n
                batch.append(
                    SSEEvent(
                        event_type=SSEEventType.IMPORT_PROGRESS,
                        user_id=users[i],
                        data={"seq": seq, "pad": body},
                    )
                )
                expected[i].append(str(batch[-1].event_id).encode())
                seq += 1
            await publisher.publish_many(batch)
            peak = max(peak, rss_mb(proc.pid))
            now = time.monotonic()
            if open_stuck and now - last_check > 0.5:
                last_check = now
                counts = dict(await admin.pubsub_numsub(*open_stuck))
                for channel, count in counts.items():
                    if int(count) == 0:
                        open_stuck.discard(channel)
                        result.closed_at.append(now - started)
            next_tick += TICK
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        elapsed = time.monotonic() - started
        result.published = seq
        result.rate = seq / elapsed

        async def caught_up() -> bool:
            return all(
                len(proto.ids) >= len(expected[stuck + k]) for k, (_, proto) in enumerate(healthy)
            )

        with contextlib.suppress(RuntimeError):  # reported as missed below
            await wait_for(caught_up, "healthy clients to catch up", 60)
        if open_stuck:  # one last look
            counts = dict(await admin.pubsub_numsub(*open_stuck))
            for channel, count in counts.items():
                if int(count) == 0:
                    open_stuck.discard(channel)
                    result.closed_at.append(time.monotonic() - started)
        result.rss_peak = max(peak, rss_mb(proc.pid))
        result.rss_end = rss_mb(proc.pid)
        for k, (_, proto) in enumerate(healthy):
            want = expected[stuck + k]
            got = set(proto.ids)
            result.missed += sum(1 for i in want if i not in got)
            result.duplicates += len(proto.ids) - len(got)
            result.resets += proto.resets
        result.stuck_closed = stuck - len(open_stuck)
        result.server_lines = sum(1 for t in server_lines if t >= started_wall)
        reader.cancel()
        return result
    finally:
        for transport, _ in healthy:
            transport.close()
        for sock in sockets:
            sock.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
        await admin.aclose()
        await client.aclose()


def report(args: argparse.Namespace, results: list[Result]) -> None:
    print(
        f"ssewatch bench http_stuck_clients: {args.connections} SSE connections on one Tornado "
        f"process, {args.stuck} of them stop reading; {args.rate} events/s for {args.seconds:g} s "
        f"round-robin over the users, payload {args.payload} B; "
        f"send timeout {args.send_timeout:g} s "
        "(shortened for the bench; default SSE_SEND_TIMEOUT_SECONDS is 30 s)"
    )
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs (shared), loopback; clients "
        "and publisher in this process, server in its own; stuck = raw sockets, SO_RCVBUF 2 KiB; "
        "server sockets SO_SNDBUF 64 KiB"
    )
    header = (
        f"{'mode':<9} {'healthy':>7} {'stuck':>5} {'events/s':>8} {'RSS base':>8} "
        f"{'RSS peak':>8} {'RSS end':>8} {'missed':>6} {'dupes':>5} {'resets':>6} "
        f"{'closed':>7} {'closed at s (min/med/max)':>26}"
    )
    print(header)
    for r in results:
        at = (
            f"{min(r.closed_at):.1f}/{statistics.median(r.closed_at):.1f}/{max(r.closed_at):.1f}"
            if r.closed_at
            else "-"
        )
        print(
            f"{r.mode:<9} {r.healthy:>7} {r.stuck:>5} {r.rate:>8.0f} {r.rss_base:>7.1f}M "
            f"{r.rss_peak:>7.1f}M {r.rss_end:>7.1f}M {r.missed:>6} {r.duplicates:>5} "
            f"{r.resets:>6} {f'{r.stuck_closed}/{r.stuck}':>7} {at:>26}"
        )
    base, stuck = results
    print(
        f"stuck vs baseline: RSS peak {stuck.rss_peak - base.rss_peak:+.1f} MB "
        f"(x{stuck.rss_peak / base.rss_peak:.2f}), RSS growth during the run "
        f"{stuck.rss_peak - stuck.rss_base:.1f} MB vs {base.rss_peak - base.rss_base:.1f} MB; "
        f"server log lines 'took no data': {stuck.server_lines}"
    )
    print(
        "('missed' = events published for a healthy client's user it never received; 'closed' = "
        "stuck clients whose Redis subscription the server released, with when, counted from "
        "the first published event)"
    )


async def drive(args: argparse.Namespace) -> None:
    raise_fd_limit(args.connections * 3 + 256)
    with bench_server() as server:  # unbounded pub/sub output buffer: a busy server is not cut off
        results = [
            await run(
                "baseline",
                args.connections,
                0,
                args.rate,
                args.seconds,
                args.payload,
                args.send_timeout,
                server.url,
            ),
            await run(
                "stuck",
                args.connections,
                args.stuck,
                args.rate,
                args.seconds,
                args.payload,
                args.send_timeout,
                server.url,
            ),
        ]
    report(args, results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--stuck", type=int, default=100)
    parser.add_argument("--rate", type=int, default=2000, help="events per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--payload", type=int, default=2000, help="bytes of padding per event")
    parser.add_argument("--send-timeout", type=float, default=5.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        raise_fd_limit(args.connections * 3 + 256)
        asyncio.run(serve(args.port, args.redis_url, args.send_timeout))
        return 0
    if not (
        1 <= args.connections <= 5000
        and 0 <= args.stuck < args.connections
        and 1 <= args.rate <= 20_000
        and 1 <= args.seconds <= 300
        and 0 <= args.payload <= 1_000_000
        and 0.5 <= args.send_timeout <= 120
    ):
        parser.error("keep it bounded: see --help for the ranges")
    asyncio.run(drive(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
