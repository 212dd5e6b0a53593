"""Telemetry behind GET /metrics: counters that only grow, whatever the views do."""

from __future__ import annotations

from fakeredis import FakeAsyncRedis

from dashboard.telemetry import Telemetry
from sse_core.categories import SSEEventCategory
from sse_core.subscriber import RedisSSESubscriber


async def test_retired_subscribers_keep_counting_and_live_ones_are_read_when_asked(
    fake_redis: FakeAsyncRedis,
) -> None:
    telemetry = Telemetry()
    first, second = RedisSSESubscriber(fake_redis), RedisSSESubscriber(fake_redis)
    telemetry.attach(first)
    telemetry.attach(second)
    first.stats.dropped, first.stats.malformed = 3, 1
    second.stats.dropped = 2
    assert telemetry.subscriber_stats().dropped == 5

    telemetry.retire(first)
    telemetry.retire(first)  # twice: counted once
    first.stats.dropped = 100  # after retirement: no longer read
    second.stats.dropped = 4  # live: read at each call
    totals = telemetry.subscriber_stats()
    assert (totals.dropped, totals.malformed) == (7, 1)


def test_deliveries_and_replays_accumulate() -> None:
    telemetry = Telemetry()
    telemetry.count_delivered({SSEEventCategory.AI: 2})
    telemetry.count_delivered({SSEEventCategory.AI: 1, SSEEventCategory.IMPORT: 4})
    telemetry.count_replay(True)
    telemetry.count_replay(False)
    telemetry.count_replay(True)
    assert telemetry.delivered[SSEEventCategory.AI] == 3
    assert telemetry.delivered[SSEEventCategory.IMPORT] == 4
    assert telemetry.delivered[SSEEventCategory.SECURITY] == 0
    assert telemetry.replays == {True: 2, False: 1}
