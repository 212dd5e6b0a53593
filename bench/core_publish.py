"""Publish with retention: ``RedisSSEPublisher`` vs PUBLISH + XADD + EXPIRE as three round trips.

The baseline is what a naive publisher does for every event: encode it, then await PUBLISH,
XADD (``MAXLEN ~``) and EXPIRE one after the other. Ours appends, trims by size and age, refreshes
the expiry and publishes in one atomic Lua call (one round trip); ``publish_many`` pipelines many
such calls in one round trip. All paths encode the same pre-built ~300-byte events; rates are
events/s, medians over interleaved repeats. "N tasks" paths run N publishing tasks at once on
one client (as request handlers would), for 100 users. Requirements: publish >= 2.2x,
publish_many >= 8x, 500 concurrent tasks >= 10x.

    python3 -m bench.core_publish [--events 3000] [--repeats 5] [--budget 150]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from bench._harness import (
    BENCH_USER,
    Budget,
    bench_server,
    client,
    header,
    median,
    percentile,
    sample_event,
    spread,
    verdict,
)
from sse_core.codec import encode_event, encode_fields, encode_payload
from sse_core.events import SSEEvent
from sse_core.keys import SSEChannelKeys
from sse_core.publisher import PUBLISH_SCRIPT, RedisSSEPublisher

KEYS = SSEChannelKeys()
MAX_LEN = 1000
TTL_SECONDS = 3600
BATCH_SIZES = (10, 100, 1000)
TASKS = 500  # concurrent publishing tasks (request handlers sharing one client)
USERS = 100  # the concurrent paths publish for this many users
# redis-py 8 defaults socket_timeout to 5 s, and each send then runs in asyncio.wait_for (a
# task per command): a large share of a round trip's client cost. Measured without it too.
NO_TIMEOUT: dict[str, Any] = {"client_options": {"socket_timeout": None}}
REQUIRED = {"publish": 2.2, "publish_many x100": 8.0, f"publish, {TASKS} tasks": 10.0}
# A pool big enough for a three-round-trip publish per task (redis-py's default caps at 100).
BIG_POOL: dict[str, Any] = {"client_options": {"max_connections": TASKS}}

Publish = Callable[[Sequence[SSEEvent]], Awaitable[None]]


@dataclass
class Candidate:
    name: str
    make: Callable[[Redis], Publish]
    client_options: dict[str, Any] = field(default_factory=dict)
    baseline: str = ""  # name of the baseline to pair with; default: the one on the same client

    @property
    def client_key(self) -> str:
        """Candidates compare with the baseline measured on the same kind of client."""
        return str(sorted(self.client_options.items()))

    retains: bool = True
    rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    latencies: list[float] | None = None  # seconds per awaited call, for the single paths


def three_round_trips(redis_client: Redis) -> Publish:
    """The issue's baseline: PUBLISH, XADD and EXPIRE, each awaited on its own."""

    async def run(events: Sequence[SSEEvent]) -> None:
        for event in events:
            payload = encode_payload(event)
            flat = encode_fields(event)
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            stream = KEYS.user_stream(event.user_id)
            await redis_client.publish(KEYS.user_channel(event.user_id), payload)
            await redis_client.xadd(stream, fields, maxlen=MAX_LEN, approximate=True)
            await redis_client.expire(stream, TTL_SECONDS)

    return run


def _publisher(redis_client: Redis, retention: bool = True) -> RedisSSEPublisher:
    return RedisSSEPublisher(
        redis_client,
        enable_retention=retention,
        retention_max_len=MAX_LEN,
        retention_ttl_seconds=TTL_SECONDS,
        raise_errors=True,
    )


def single(retention: bool, timed: list[float] | None = None) -> Callable[[Redis], Publish]:
    def make(redis_client: Redis) -> Publish:
        publisher = _publisher(redis_client, retention)

        async def run(events: Sequence[SSEEvent]) -> None:
            for event in events:
                started = time.perf_counter()
                await publisher.publish(event)
                if timed is not None:
                    timed.append(time.perf_counter() - started)

        return run

    return make


def direct(timed: list[float]) -> Callable[[Redis], Publish]:
    """The publish of 1d287a0 (before the batcher): the caller awaits its own EVALSHA."""

    def make(redis_client: Redis) -> Publish:
        publisher = _publisher(redis_client)
        script = redis_client.register_script(PUBLISH_SCRIPT)

        async def run(events: Sequence[SSEEvent]) -> None:
            for event in events:
                started = time.perf_counter()
                call = publisher._call(
                    publisher._to_user(event.user_id, event), encode_event(event)
                )
                await script(keys=list(call.keys), args=list(call.args))
                timed.append(time.perf_counter() - started)

        return run

    return make


def concurrent(tasks: int, path: Callable[[Redis], Publish]) -> Callable[[Redis], Publish]:
    """``tasks`` handlers at once on one client, each awaiting its share of ``path``."""

    def make(redis_client: Redis) -> Publish:
        run_share = path(redis_client)

        async def run(events: Sequence[SSEEvent]) -> None:
            await asyncio.gather(*(run_share(events[i::tasks]) for i in range(tasks)))

        return run

    return make


def batched(size: int) -> Callable[[Redis], Publish]:
    def make(redis_client: Redis) -> Publish:
        publisher = _publisher(redis_client)

        async def run(events: Sequence[SSEEvent]) -> None:
            for start in range(0, len(events), size):
                await publisher.publish_many(events[start : start + size])

        return run

    return make


async def measure(url: str, path: Candidate, events: Sequence[SSEEvent]) -> float:
    async with client(url, **path.client_options) as redis_client:
        await redis_client.flushall()
        run = path.make(redis_client)
        mark = len(path.latencies) if path.latencies is not None else 0
        await run(events[:50])  # connect, load the script
        if path.latencies is not None:
            del path.latencies[mark:]  # keep only measured calls
        await redis_client.flushall()
        started = time.perf_counter()
        await run(events)
        elapsed = time.perf_counter() - started
        if path.retains:
            for user, sent in Counter(e.user_id for e in events).items():
                retained = await redis_client.xlen(KEYS.user_stream(user))
                if retained < min(sent, MAX_LEN):
                    raise RuntimeError(f"{path.name}: {retained} of {sent} events retained")
    return len(events) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="per repeat, single paths")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=150.0, help="seconds, whole script")
    args = parser.parse_args()
    budget = Budget(args.budget)
    publish_latency: list[float] = []
    direct_latency: list[float] = []
    paths = [
        Candidate("3 round trips (baseline)", three_round_trips),
        Candidate("publish", single(True, publish_latency), latencies=publish_latency),
        Candidate(
            "publish, direct EVALSHA (1d287a0)", direct(direct_latency), latencies=direct_latency
        ),
        *(Candidate(f"publish_many x{size}", batched(size)) for size in BATCH_SIZES),
        Candidate(f"publish, {TASKS} tasks", concurrent(TASKS, single(retention=True))),
        Candidate(
            f"3 round trips, {TASKS} tasks, pool {TASKS}",
            concurrent(TASKS, three_round_trips),
            baseline="3 round trips (baseline)",
            **BIG_POOL,
        ),
        Candidate("publish, retention off", single(retention=False), retains=False),
        Candidate("3 round trips, no socket_timeout", three_round_trips, **NO_TIMEOUT),
        Candidate("publish, no socket_timeout", single(retention=True), **NO_TIMEOUT),
        Candidate("publish_many x100, no socket_timeout", batched(100), **NO_TIMEOUT),
    ]
    single_events = [sample_event(i) for i in range(args.events)]
    batch_events = [sample_event(i) for i in range(args.events * 10)]
    users = [BENCH_USER, *(UUID(int=i + 1) for i in range(USERS - 1))]
    many_users = [sample_event(i, user_id=users[i % USERS]) for i in range(args.events * 10)]
    with bench_server() as server:
        header("core publish: retention in one round trip vs PUBLISH + XADD + EXPIRE", server)
        print(
            f"retention MAXLEN ~{MAX_LEN}, TTL {TTL_SECONDS}s; payload "
            f"{len(encode_payload(single_events[0]))} bytes; {args.events:,} events per repeat "
            f"({len(batch_events):,} for publish_many)"
        )
        # Each candidate is measured right next to its baseline (same kind of client, order
        # alternating), and its ratio is the median of these paired ratios: drift on a shared
        # machine (the round-trip-bound baseline varies most) then cancels out.
        baselines = {p.client_key: p for p in paths if p.make is three_round_trips}
        by_name = {p.name: p for p in paths}
        for repeat in range(args.repeats):
            if repeat and budget.spent():
                print(f"(budget spent after {repeat} repeats)")
                break
            for path in paths:
                if path.make is three_round_trips:
                    continue
                base = by_name[path.baseline] if path.baseline else baselines[path.client_key]
                pair = (base, path) if repeat % 2 == 0 else (path, base)
                for one in pair:
                    events = single_events
                    if one.name.startswith("publish_many"):
                        events = batch_events
                    elif "tasks" in one.name:
                        events = many_users
                    one.rates.append(await measure(server.url, one, events))
                path.ratios.append(path.rates[-1] / base.rates[-1])
    print(f"\n{'path':<36} {'median events/s':>15} {'repeats':>19} {'vs 3 round trips':>17}")
    ok = True
    for path in paths:
        rate = median(path.rates)
        ratio = median(path.ratios) if path.ratios else 1.0
        note = ""
        if path.name in REQUIRED:
            passed = ratio >= REQUIRED[path.name]
            ok = ok and passed
            note = f"  (need >= {REQUIRED[path.name]:g}x: {verdict(passed)})"
        print(f"{path.name:<36} {rate:>15,.0f} {spread(path.rates):>19} {ratio:>16.2f}x{note}")
    print("(the ratio is the median of per-repeat ratios to a baseline measured alongside)")
    by_name = {p.name: median(p.rates) for p in paths}
    for path in paths:
        if path.latencies:
            print(
                f"{path.name}: latency per awaited call p50 {median(path.latencies) * 1e6:.0f} us, "
                f"p90 {percentile(path.latencies, 90) * 1e6:.0f} us"
            )
    coalesced = by_name[f"publish, {TASKS} tasks"]
    uncoalesced = by_name[f"3 round trips, {TASKS} tasks, pool {TASKS}"]
    print(
        f"publish, {TASKS} tasks vs 3 round trips with {TASKS} tasks on a pool of {TASKS}: "
        f"{coalesced / uncoalesced:.2f}x"
    )
    print(
        f"\nrequirements (publish >= 2.2x, publish_many >= 8x, {TASKS} tasks >= 10x): {verdict(ok)}"
    )


if __name__ == "__main__":
    asyncio.run(main())
