"""Latency publish -> yield at a steady 1,000 events/s, next to the bare redis-py loop's.

A separate process publishes one event per millisecond, each stamped with the monotonic clock
(``time.perf_counter_ns``, shared by all processes on Linux) right before its publish call; the
consumer takes the clock again when the event reaches it. Four pairings separate the costs:

* bare PUBLISH -> bare loop (pub/sub + ``json.loads``): the baseline
* ``RedisSSEPublisher.publish`` (retention on) -> bare loop: what the atomic publish adds
* bare PUBLISH -> ``RedisSSESubscriber.subscribe``: what the subscriber adds
* ``publish`` (retention on) -> ``subscribe``: the product path

Percentiles are per repeat (the first 100 events of each are a warm-up and are dropped); the
table shows their medians over repeats.

    python3 -m bench.core_latency [--events 2000] [--rate 1000] [--repeats 5] [--budget 90]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from bench._harness import (
    BENCH_USER,
    Budget,
    PublisherProcess,
    bench_server,
    client,
    header,
    median,
    percentile,
    sample_event,
)
from sse_core.codec import encode_payload
from sse_core.keys import SSEChannelKeys
from sse_core.subscriber import RedisSSESubscriber

CHANNEL = SSEChannelKeys().user_channel(BENCH_USER)
WARM_UP_EVENTS = 100
PERCENTILES = (50, 90, 99)
RUN_TIMEOUT_SLACK = 30.0


@dataclass
class Pairing:
    name: str
    publish_mode: str  # PublisherProcess.start_paced mode
    consumer: str  # "bare" | "sse"
    runs: list[dict[str, float]] = field(default_factory=list)


async def _bare_stamps(redis_client: Redis) -> AsyncIterator[int]:
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(CHANNEL)
    try:
        async for message in pubsub.listen():
            if message["type"] == "message":
                stamp = json.loads(message["data"])["data"].get("sent_ns")
                yield -1 if stamp is None else stamp
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _sse_stamps(redis_client: Redis) -> AsyncIterator[int]:
    async for event in RedisSSESubscriber(redis_client).subscribe(BENCH_USER):
        stamp = event.data.get("sent_ns")
        yield -1 if stamp is None else stamp


async def run_pairing(
    url: str, pairing: Pairing, publisher: PublisherProcess, count: int, rate: float
) -> None:
    async with client(url) as redis_client:
        source = _bare_stamps if pairing.consumer == "bare" else _sse_stamps
        stamps = source(redis_client)
        # A marker (no stamp) proves the subscription is live before the paced run starts.
        first: asyncio.Future[int] = asyncio.ensure_future(anext(stamps))
        marker = encode_payload(sample_event(-1))
        while not first.done():
            await redis_client.publish(CHANNEL, marker)
            await asyncio.wait({first}, timeout=0.1)
        latencies: list[float] = []
        publisher.start_paced(count, rate, pairing.publish_mode)
        async with asyncio.timeout(count / rate + RUN_TIMEOUT_SLACK):
            async for stamp in stamps:
                now = time.perf_counter_ns()
                if stamp < 0:
                    continue  # a late marker
                latencies.append((now - stamp) / 1e6)
                if len(latencies) == count:
                    break
        await stamps.aclose()  # type: ignore[attr-defined]
        publisher.result()
    measured = latencies[WARM_UP_EVENTS:]
    run: dict[str, Any] = {f"p{p}": percentile(measured, p) for p in PERCENTILES}
    run["max"] = max(measured)
    pairing.runs.append(run)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="per repeat")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=90.0, help="seconds, whole script")
    args = parser.parse_args()
    budget = Budget(args.budget)
    pairings = [
        Pairing("bare PUBLISH -> bare loop", "bare", "bare"),
        Pairing("publish (retention) -> bare loop", "retention", "bare"),
        Pairing("bare PUBLISH -> subscribe", "bare", "sse"),
        Pairing("publish (retention) -> subscribe", "retention", "sse"),
    ]
    with bench_server() as server:
        header("core latency: publish -> yield at a steady rate", server)
        print(
            f"{args.rate:,.0f} events/s, {args.events:,} events per repeat "
            f"(first {WARM_UP_EVENTS} dropped), publisher in a separate process"
        )
        with PublisherProcess(server.url, CHANNEL, []) as publisher:
            for repeat in range(args.repeats):
                if repeat and budget.spent():
                    print(f"(budget spent after {repeat} repeats)")
                    break
                for pairing in pairings if repeat % 2 == 0 else pairings[::-1]:
                    await run_pairing(server.url, pairing, publisher, args.events, args.rate)
    base = pairings[0]
    columns = [f"p{p}" for p in PERCENTILES] + ["max"]
    print(f"\n{'pairing (ms, median over repeats)':<36}" + "".join(f"{c:>8}" for c in columns))
    for pairing in pairings:
        values = {c: median([run[c] for run in pairing.runs]) for c in columns}
        print(f"{pairing.name:<36}" + "".join(f"{values[c]:>8.3f}" for c in columns))
    print(f"\n{'vs baseline (x)':<36}" + "".join(f"{c:>8}" for c in columns))
    for pairing in pairings[1:]:
        ratios = {
            c: median([run[c] for run in pairing.runs]) / median([run[c] for run in base.runs])
            for c in columns
        }
        print(f"{pairing.name:<36}" + "".join(f"{ratios[c]:>8.2f}" for c in columns))


if __name__ == "__main__":
    asyncio.run(main())
