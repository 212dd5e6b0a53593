"""The dashboard's aggregation state, without Redis or a browser (clocks are injected)."""

from __future__ import annotations

import sys
import tracemalloc
from uuid import UUID

import pytest

from dashboard.palette import CATEGORY_COLORS, NEUTRAL_COLOR, category_color
from dashboard.state import CATEGORIES, GAP_CATEGORY, LiveState, clock_time, summarize
from sse_core.categories import SSEEventCategory
from sse_core.events import SSEEvent
from sse_core.registry import EVENT_REGISTRY, SSEEventType
from sse_core.subscriber import StreamGap

USER = UUID("0192f0c1-7c4e-7d3a-9b1e-2f6a8c0d4e51")
TYPE_OF: dict[SSEEventCategory, SSEEventType] = {}
for _type, _info in EVENT_REGISTRY.items():
    TYPE_OF.setdefault(_info.category, _type)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def event(category: SSEEventCategory, **data: object) -> SSEEvent:
    return SSEEvent(event_type=TYPE_OF[category], user_id=USER, data=data)


def make_state(clock: FakeClock, **kwargs: object) -> LiveState:
    return LiveState(clock=clock, wall_clock=lambda: clock.now + 1_700_000_000, **kwargs)  # type: ignore[arg-type]


def test_every_category_has_one_distinct_colour() -> None:
    assert set(CATEGORY_COLORS) == set(SSEEventCategory)
    assert len(set(CATEGORY_COLORS.values())) == len(CATEGORY_COLORS)
    assert category_color("ai") == CATEGORY_COLORS[SSEEventCategory.AI]
    assert category_color(GAP_CATEGORY) == NEUTRAL_COLOR


def test_counts_per_category_accumulate_across_drains() -> None:
    clock = FakeClock()
    state = make_state(clock)
    for _ in range(3):
        state.add(event(SSEEventCategory.AI))
    state.add(event(SSEEventCategory.SECURITY))
    first = state.drain()
    state.add(event(SSEEventCategory.AI))
    second = state.drain()

    assert first.counts[SSEEventCategory.AI] == 3
    assert first.counts[SSEEventCategory.SECURITY] == 1
    assert first.total == 4
    assert second.counts[SSEEventCategory.AI] == 4
    assert second.total == 5
    assert sum(second.counts.values()) == second.total


def test_drain_without_new_items_reports_no_change() -> None:
    clock = FakeClock()
    state = make_state(clock)
    state.add(event(SSEEventCategory.AI))
    assert state.drain().changed
    quiet = state.drain()
    assert not quiet.changed
    assert quiet.new_rows == 0
    assert quiet.total == 1


def test_one_frame_per_drain_whatever_the_rate() -> None:
    """Ten thousand events between two flushes fold into one tick with exact counts."""
    clock = FakeClock()
    state = make_state(clock, feed_size=20)
    for index in range(10_000):
        state.add(event(CATEGORIES[index % len(CATEGORIES)]))
    assert state.pending == 20  # the buffer holds only what the feed can show
    tick = state.drain()
    assert tick.total == 10_000
    assert tick.new_rows == 20
    assert all(count in (1666, 1667) for count in tick.counts.values())
    assert state.pending == 0


def test_feed_is_newest_first_and_bounded() -> None:
    clock = FakeClock()
    state = make_state(clock, feed_size=3)
    events = [event(SSEEventCategory.IMPORT, n=i) for i in range(5)]
    for item in events[:2]:
        state.add(item)
    state.drain()
    for item in events[2:]:
        state.add(item)
    tick = state.drain()
    assert [row.event_id for row in state.feed] == [str(e.event_id) for e in events[:1:-1]]
    assert tick.newest_event_id == str(events[-1].event_id)
    assert state.feed[0].summary == "n=4"
    assert state.feed[0].category == "import"
    assert state.feed[0].event_type == TYPE_OF[SSEEventCategory.IMPORT].value


def test_gaps_are_counted_and_marked_in_the_feed() -> None:
    clock = FakeClock()
    state = make_state(clock)
    before = event(SSEEventCategory.AI)
    state.add(before)
    state.add(StreamGap("lagged", before.event_id))
    tick = state.drain()
    assert tick.gaps == 1
    assert tick.total == 1  # a gap is not an event
    marker = state.feed[0]
    assert marker.category == GAP_CATEGORY
    assert "lagged" in marker.event_type
    assert str(before.event_id) in marker.summary


def test_rates_per_category_per_closed_bucket() -> None:
    clock = FakeClock()
    state = make_state(clock, bucket_seconds=1.0)
    for _ in range(4):
        state.add(event(SSEEventCategory.DATA_SYNC))
    state.add(event(SSEEventCategory.AI))
    clock.advance(0.5)
    assert state.drain().rate_points == ()  # bucket still open
    state.add(event(SSEEventCategory.AI))
    clock.advance(0.4)
    assert state.drain().rate_points == ()  # counted into the open bucket
    clock.advance(0.2)
    points = state.drain().rate_points
    assert len(points) == 1
    rates = dict(zip(CATEGORIES, points[0].rates, strict=True))
    assert rates[SSEEventCategory.DATA_SYNC] == 4.0
    assert rates[SSEEventCategory.AI] == 2.0
    assert points[0].total == 6.0
    clock.advance(1.0)
    quiet = state.drain()
    assert [p.total for p in quiet.rate_points] == [0.0]
    assert quiet.events_per_second == 6.0 / 5  # mean of the last five buckets: 6/s, then 0/s


def test_rate_points_carry_wall_clock_time_in_order() -> None:
    clock = FakeClock()
    state = make_state(clock)
    clock.advance(3.2)
    points = state.drain().rate_points
    assert len(points) == 3
    times = [p.time_ms for p in points]
    assert times == sorted(times)
    assert times[1] - times[0] == pytest.approx(1000.0)
    assert times[-1] <= (clock.now + 1_700_000_000) * 1000


def test_the_window_slides_counts_and_rate_history_with_it() -> None:
    clock = FakeClock()
    state = make_state(clock, window_seconds=10, bucket_seconds=1.0)
    for _ in range(25):
        state.add(event(SSEEventCategory.PORTFOLIO))
        clock.advance(1.0)
        state.drain()
    history = state.rate_history
    assert len(history) == 9  # the window's closed buckets; the tenth is the open one
    assert [p.total for p in history] == [1.0] * 9
    assert history[-1].time_ms > history[0].time_ms
    assert state.total == 10  # events of the last 10 s only (one per second)
    assert state.counts[SSEEventCategory.PORTFOLIO] == 10
    clock.advance(30)
    assert state.drain().total == 0


def test_a_long_stall_emits_at_most_one_window_of_buckets() -> None:
    clock = FakeClock()
    state = make_state(clock, window_seconds=10, bucket_seconds=1.0)
    clock.advance(3600)
    points = state.drain().rate_points
    assert len(points) == 10
    clock.advance(1.0)
    assert len(state.drain().rate_points) == 1


def test_time_since_last_event() -> None:
    clock = FakeClock()
    state = make_state(clock)
    assert state.drain().seconds_since_last is None
    state.add(event(SSEEventCategory.SECURITY))
    clock.advance(2.5)
    assert state.drain().seconds_since_last == pytest.approx(2.5)


def test_memory_stays_bounded_however_long_the_session_runs() -> None:
    clock = FakeClock()
    state = make_state(clock, feed_size=50, keep=50, window_seconds=60)
    sample = [event(c, payload="x" * 50) for c in CATEGORIES]

    def run(ticks: int) -> None:
        for _ in range(ticks):
            for item in sample * 10:
                state.add(item)
            clock.advance(0.2)
            state.drain()

    run(300)  # fill every bounded collection
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        run(900)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(state.feed) == 50
    assert len(state.rate_history) == 59
    # 60 events per 0.2 s tick: 59 closed one-second buckets plus the open one so far.
    assert 59 * 300 < state.total <= 60 * 300
    assert after - baseline < 64 * 1024, f"grew by {after - baseline} bytes"


def test_summary_is_one_bounded_line() -> None:
    assert summarize({"a": 1, "b": "two", "c": {"d": [1, 2]}}) == 'a=1  b=two  c={"d":[1,2]}'
    long = summarize({"text": "x" * 500}, limit=40)
    assert len(long) == 40
    assert long.endswith("…")
    assert "\n" not in summarize({"text": "line1\nline2"})


def test_clock_time_is_utc_with_milliseconds() -> None:
    from datetime import datetime, timedelta, timezone

    moment = datetime(2024, 5, 1, 14, 3, 7, 250_000, tzinfo=timezone(timedelta(hours=2)))
    assert clock_time(moment) == "12:03:07.250"


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        LiveState(feed_size=0)
    with pytest.raises(ValueError, match="at least one bucket"):
        LiveState(window_seconds=0.5, bucket_seconds=1.0)


def test_add_does_not_grow_per_event_state() -> None:
    clock = FakeClock()
    state = make_state(clock, feed_size=5)
    item = event(SSEEventCategory.AI)
    for _ in range(1000):
        state.add(item)
    assert state.pending == 5
    assert sys.getsizeof(state._pending_live) < 1024
    assert state._pending_history == {}


# -- the window from retention, failures, coverage ------------------------------------------


def at(category: SSEEventCategory, ms: float, event_type: SSEEventType | None = None) -> SSEEvent:
    """An event that happened at wall-clock ``ms`` (its UUIDv7 id carries the same time)."""
    from datetime import UTC, datetime

    from sse_core.ids import uuid7

    return SSEEvent(
        event_id=uuid7(now_ms=int(ms)),
        event_type=event_type or TYPE_OF[category],
        user_id=USER,
        occurred_at=datetime.fromtimestamp(ms / 1000, UTC),
    )


def test_back_filled_history_lands_in_the_buckets_of_its_own_time() -> None:
    clock = FakeClock()
    state = make_state(clock, window_seconds=60)
    opened_ms = state.live_from_ms
    history = [at(SSEEventCategory.AI, opened_ms - s * 1000 - 500) for s in (50, 50, 10)]
    for item in history:
        state.add(item)
    tick = state.drain()
    assert tick.redraw  # history arrived: charts redraw whole
    assert tick.total == 3
    assert tick.counts[SSEEventCategory.AI] == 3
    assert tick.added == {}  # not live
    totals = {p.time_ms: p.total for p in state.rate_history if p.total}
    assert totals == {opened_ms - 50_000: 2.0, opened_ms - 10_000: 1.0}
    assert tick.seconds_since_last == pytest.approx(10.5)  # a quiet user is not "—"
    assert tick.coverage is not None
    assert tick.coverage.complete

    live = event(SSEEventCategory.AI)  # now (later than the view opened): live, by arrival
    state.add(live)
    clock.advance(0.1)
    second = state.drain()
    assert not second.redraw
    assert second.total == 4
    assert second.added == {SSEEventCategory.AI: 1}


def test_history_outside_the_window_is_not_counted() -> None:
    clock = FakeClock()
    state = make_state(clock, window_seconds=60)
    state.add(at(SSEEventCategory.IMPORT, state.live_from_ms - 120_000))
    assert state.drain().total == 0


def test_failures_are_counted_in_the_window_with_a_per_minute_rate() -> None:
    clock = FakeClock()
    state = make_state(clock, window_seconds=300)
    opened = state.live_from_ms
    failed = [
        at(SSEEventCategory.DATA_SYNC, opened - 200_000, SSEEventType.SYNC_ACCOUNTS_FAILED),
        at(SSEEventCategory.SECURITY, opened - 100_000, SSEEventType.SECURITY_LOGIN_FAILED),
        at(SSEEventCategory.PROVIDER, opened - 50_000, SSEEventType.PROVIDER_DISCONNECTED),
    ]
    fine = at(SSEEventCategory.DATA_SYNC, opened - 10_000, SSEEventType.SYNC_ACCOUNTS_COMPLETED)
    for item in [*failed, fine]:
        state.add(item)
    tick = state.drain()
    assert (tick.total, tick.failures) == (4, 3)
    assert tick.failures_per_minute == pytest.approx(3 / 5)  # the window is covered: 5 min
    assert [row.severity for row in state.feed] == ["info", "failure", "failure", "failure"]


def test_a_resume_gap_means_retention_did_not_reach_the_window_start() -> None:
    clock = FakeClock()
    state = make_state(clock, window_seconds=900)
    oldest = state.live_from_ms - 240_000
    state.add(StreamGap("resume", None))
    state.add(at(SSEEventCategory.AI, oldest))
    tick = state.drain()
    assert tick.gaps == 0  # not a gap in the stream: a limit of the history
    assert [row.event_type for row in state.feed] == [TYPE_OF[SSEEventCategory.AI].value]
    assert tick.coverage is not None
    assert not tick.coverage.complete
    assert tick.coverage.history_from_ms == oldest
    assert tick.coverage.history_seconds == pytest.approx(240)


def test_feed_rows_keep_the_whole_event_and_search_its_payload() -> None:
    clock = FakeClock()
    state = make_state(clock)
    nested = {"outer": {"inner": ["Needle in a haystack", 1]}, "note": "x" * 500}
    item = SSEEvent(event_type=SSEEventType.IMPORT_FAILED, user_id=USER, data=nested)
    state.add(item)
    state.drain()
    row = state.feed[0]
    assert row.event is item
    assert len(row.summary) <= 120  # the feed's line is cut; the event is not
    assert "needle in a haystack" in row.search_text()
    assert str(item.event_id) in row.search_text()
