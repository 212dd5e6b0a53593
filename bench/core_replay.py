"""Replay cost: seeking to ``Last-Event-ID`` vs scanning the whole retention stream.

For 1k, 10k and 100k retained events of one user, fetch the events after the one 1,000 from the
end (``RedisSSESubscriber.replay`` and ``get_missed_events``) and compare with the naive way to
the same result: ``XRANGE - +`` of the whole stream, find the entry with that event id, decode
what follows. Both return the same ``SSEEvent``s (checked). A raw ``XRANGE`` of the entries from
the seek position (no decoding) is printed as the floor the issue quotes (~2 ms). Medians over
interleaved repeats; the requirement is replay <= 1/100 of the full scan at 100k.

    python3 -m bench.core_replay [--sizes 1000,10000,100000] [--repeats 7] [--budget 120]
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

from bench._harness import (
    BENCH_USER,
    Budget,
    bench_server,
    client,
    header,
    median,
    sample_event,
    verdict,
)
from sse_core.codec import decode_fields
from sse_core.events import SSEEvent
from sse_core.ids import uuid7_time_ms
from sse_core.keys import SSEChannelKeys
from sse_core.publisher import RedisSSEPublisher
from sse_core.subscriber import RedisSSESubscriber

KEYS = SSEChannelKeys()
MISSED = 1000
REQUIRED_FRACTION = 1 / 100
FILL_BATCH = 1000


async def full_scan(redis_client: Redis, last_event_id: UUID) -> list[SSEEvent]:
    """The naive replay: read everything, find the id, decode what follows."""
    rows: list[Any] = await redis_client.xrange(KEYS.user_stream(BENCH_USER), "-", "+")
    wanted = str(last_event_id).encode()
    position = next(i for i, (_, fields) in enumerate(rows) if fields[b"event_id"] == wanted)
    return [decode_fields(fields) for _, fields in rows[position + 1 :]]


async def raw_seek(redis_client: Redis, last_event_id: UUID) -> int:
    """The floor: XRANGE from the id's millisecond on, nothing decoded."""
    start = f"{uuid7_time_ms(last_event_id)}-0"
    rows = await redis_client.xrange(KEYS.user_stream(BENCH_USER), min=start, max="+")
    return len(rows)


async def timed(run: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    # Start every measurement from the same heap state: the full scan of 100k entries leaves a
    # lot of garbage whose collection would otherwise land in whatever is timed next.
    gc.collect()
    started = time.perf_counter()
    result = await run()
    return (time.perf_counter() - started) * 1000, result


async def fill(publisher: RedisSSEPublisher, start: int, stop: int) -> list[SSEEvent]:
    events = [sample_event(i) for i in range(start, stop)]
    for offset in range(0, len(events), FILL_BATCH):
        if not await publisher.publish_many(events[offset : offset + FILL_BATCH]):
            raise RuntimeError("filling the stream failed")
    return events


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds, whole script")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    budget = Budget(args.budget)
    with bench_server() as server:
        header("core replay: seek to Last-Event-ID vs full-stream scan", server)
        # Generous read timeout: a 100k-entry full scan on a loaded machine can exceed 5 s.
        slow_reads: dict[str, Any] = {"socket_timeout": 300}
        async with client(server.url, **slow_reads) as redis_client:
            publisher = RedisSSEPublisher(
                redis_client, enable_retention=True, retention_max_len=2 * sizes[-1]
            )
            subscriber = RedisSSESubscriber(redis_client, enable_retention=True)
            events: list[SSEEvent] = []
            print(
                f"\n{'retained':>9} {'missed':>7} {'replay ms':>10} {'get_missed':>11} "
                f"{'full scan ms':>13} {'raw XRANGE':>11} {'replay/scan':>12}"
            )
            ok = True
            for size in sizes:
                events += await fill(publisher, len(events), size)
                retained = await redis_client.xlen(KEYS.user_stream(BENCH_USER))
                missed = min(MISSED, size - 1)
                last = events[-missed - 1].event_id
                expected = [e.event_id for e in events[-missed:]]
                samples: dict[str, list[float]] = {
                    "replay": [],
                    "missed": [],
                    "scan": [],
                    "raw": [],
                }
                for repeat in range(args.repeats):
                    if repeat and budget.spent():
                        break
                    ms, replay = await timed(lambda: subscriber.replay(BENCH_USER, last))  # noqa: B023
                    samples["replay"].append(ms)
                    if [e.event_id for e in replay.events] != expected or not replay.complete:
                        raise RuntimeError("replay returned the wrong events")
                    ms, got = await timed(lambda: subscriber.get_missed_events(BENCH_USER, last))  # noqa: B023
                    samples["missed"].append(ms)
                    ms, scanned = await timed(lambda: full_scan(redis_client, last))  # noqa: B023
                    samples["scan"].append(ms)
                    if [e.event_id for e in scanned] != expected or len(got) != missed:
                        raise RuntimeError("full scan returned the wrong events")
                    ms, _ = await timed(lambda: raw_seek(redis_client, last))  # noqa: B023
                    samples["raw"].append(ms)
                m = {name: median(values) for name, values in samples.items() if values}
                fraction = m["replay"] / m["scan"]
                note = ""
                if size == sizes[-1]:
                    passed = fraction <= REQUIRED_FRACTION
                    ok = passed
                    note = f"  (need <= 1/100: {verdict(passed)})"
                print(
                    f"{retained:>9,} {missed:>7,} {m['replay']:>10.2f} {m['missed']:>11.2f} "
                    f"{m['scan']:>13.2f} {m['raw']:>11.2f} {'1/' + format(1 / fraction, '.0f'):>12}"
                    f"{note}"
                )
            print(
                f"(ms, medians of {args.repeats} repeats; 'raw XRANGE' = the entries from the "
                "seek position, not decoded)"
            )
        print(f"\nrequirement (replay <= 1/100 of a full scan at {sizes[-1]:,}): {verdict(ok)}")


if __name__ == "__main__":
    asyncio.run(main())
