"""Replay in the seed's layout (SSE_KEY_LAYOUT=dashtam): backward seek vs the seed's full read.

The seed's entry ids are Redis's clock, so no position can be derived from an event id. ssewatch
reads the user's stream backwards in doubling pages until it meets the id; the seed's own
subscriber (the baseline, same run) reads the whole stream with ``XRANGE - +``, finds the id and
decodes what follows. Both return the same events (checked). For 1k, 10k and 100k retained
events, fetch the last 10, 100 and 1,000. Medians over interleaved repeats.

    python3 -m bench.dashtam_replay [--sizes 1000,10000,100000] [--repeats 5] [--budget 120]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from bench._harness import BENCH_USER, Budget, bench_server, client, header, median, sample_event
from sse_core import dashtam
from sse_core.events import SSEEvent
from sse_core.keys import DashtamChannelKeys
from sse_core.publisher import RedisSSEPublisher
from sse_core.subscriber import RedisSSESubscriber

KEYS = DashtamChannelKeys()
MISSED = (10, 100, 1000)
FILL_BATCH = 200


async def seed_way(redis_client: Redis, last_event_id: UUID) -> list[SSEEvent]:
    """What the seed's get_missed_events does: read it all, skip to the id, decode the rest."""
    rows: list[Any] = await redis_client.xrange(KEYS.user_stream(BENCH_USER), "-", "+")
    wanted = str(last_event_id).encode()
    position = next(i for i, (_, fields) in enumerate(rows) if fields[b"event_id"] == wanted)
    return [dashtam.decode_entry(fields, BENCH_USER) for _, fields in rows[position + 1 :]]


async def timed(run: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    result = await run()
    return (time.perf_counter() - started) * 1000, result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds, whole script")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    budget = Budget(args.budget)
    with bench_server() as server:
        header("dashtam-layout replay: backward seek vs the seed's full read", server)
        async with client(server.url, socket_timeout=60) as redis_client:
            publisher = RedisSSEPublisher(
                redis_client, enable_retention=True, retention_max_len=2 * sizes[-1], keys=KEYS
            )
            subscriber = RedisSSESubscriber(redis_client, enable_retention=True, keys=KEYS)
            events: list[SSEEvent] = []
            print(
                f"\n{'retained':>9} {'missed':>7} {'seek ms':>9} {'seed ms':>9} {'seek/seed':>10}"
            )
            for size in sizes:
                fresh = [sample_event(i) for i in range(len(events), size)]
                for offset in range(0, len(fresh), FILL_BATCH):
                    if not await publisher.publish_many(fresh[offset : offset + FILL_BATCH]):
                        raise RuntimeError("filling the stream failed")
                events += fresh
                for missed in [m for m in MISSED if m < size]:
                    last = events[-missed - 1].event_id
                    expected = [e.event_id for e in events[-missed:]]
                    seek: list[float] = []
                    seed: list[float] = []
                    for repeat in range(args.repeats):
                        if repeat and budget.spent():
                            break
                        ms, replay = await timed(lambda: subscriber.replay(BENCH_USER, last))  # noqa: B023
                        if [e.event_id for e in replay.events] != expected or not replay.complete:
                            raise RuntimeError("replay returned the wrong events")
                        seek.append(ms)
                        ms, got = await timed(lambda: seed_way(redis_client, last))  # noqa: B023
                        if [e.event_id for e in got] != expected:
                            raise RuntimeError("the seed's way returned the wrong events")
                        seed.append(ms)
                    ratio = median(seek) / median(seed)
                    print(
                        f"{size:>9,} {missed:>7,} {median(seek):>9.2f} {median(seed):>9.2f} "
                        f"{ratio:>9.3f}"
                    )
            print(f"(ms, medians of up to {args.repeats} interleaved repeats)")


if __name__ == "__main__":
    asyncio.run(main())
