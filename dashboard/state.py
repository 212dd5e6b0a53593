"""What one dashboard view has received, folded into the numbers and rows the UI shows.

Two sides, one owner each. The consumer task calls :meth:`LiveState.add` per stream item: O(1),
no allocation beyond a bounded deque, so it keeps up with thousands of events per second. The
periodic UI callback calls :meth:`LiveState.drain` once per tick and gets one :class:`Frame`,
whatever the event rate. Every collection is bounded, so a session can run for days.

No Panel or Bokeh here: everything is unit-tested without a browser, with injected clocks.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sse_core.categories import SSEEventCategory
from sse_core.events import SSEEvent
from sse_core.subscriber import StreamGap

Clock = Callable[[], float]

CATEGORIES: tuple[SSEEventCategory, ...] = tuple(SSEEventCategory)
GAP_CATEGORY = "gap"
SUMMARY_LIMIT = 120


def summarize(data: Mapping[str, Any], limit: int = SUMMARY_LIMIT) -> str:
    """A one-line ``key=value`` digest of an event payload, cut to ``limit`` characters."""
    parts = []
    for key, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        parts.append(f"{key}={' '.join(text.split())}")  # one line, whatever the payload holds
    line = "  ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def clock_time(moment: datetime) -> str:
    """``HH:MM:SS.mmm`` in UTC: the feed shows time of day; the replay table has full dates."""
    return moment.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One line of the live feed: an event, or a marker where events may be missing."""

    event_id: str
    time: str
    category: str
    event_type: str
    summary: str

    @classmethod
    def of_event(cls, event: SSEEvent) -> FeedRow:
        return cls(
            event_id=str(event.event_id),
            time=clock_time(event.occurred_at),
            category=event.category.value,
            event_type=event.event_type.value,
            summary=summarize(event.data),
        )

    @classmethod
    def of_gap(cls, gap: StreamGap, at: datetime) -> FeedRow:
        after = f" after {gap.after_event_id}" if gap.after_event_id else ""
        return cls(
            event_id="",
            time=clock_time(at),
            category=GAP_CATEGORY,
            event_type=f"gap ({gap.reason})",
            summary=f"events may be missing{after}; retention could not fill the gap",
        )


@dataclass(frozen=True, slots=True)
class RatePoint:
    """Events per second per category over one closed bucket (``rates`` in CATEGORIES order)."""

    time_ms: float  # wall-clock epoch milliseconds at the end of the bucket
    rates: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.rates)


@dataclass(frozen=True, slots=True)
class Frame:
    """One tick's worth of changes for the UI.

    ``new_rows`` says how many feed rows arrived since the previous frame (at most the feed
    size); ``rate_points`` are the buckets that closed since then, oldest first.
    """

    changed: bool
    total: int
    counts: Mapping[SSEEventCategory, int]
    new_rows: int
    rate_points: tuple[RatePoint, ...]
    events_per_second: float
    seconds_since_last: float | None
    newest_event_id: str | None
    gaps: int
    added: Mapping[SSEEventCategory, int] = field(default_factory=dict)  # this frame's events


class LiveState:
    """Aggregates for one subscription: counts, per-category rates, a bounded feed.

    Rates are bucketed by arrival (at drain time, so a count may land in the neighbouring
    bucket by at most one tick); ``history_seconds`` bounds the rate history the chart can show.
    """

    def __init__(
        self,
        *,
        feed_size: int = 50,
        history_seconds: float = 900.0,
        bucket_seconds: float = 1.0,
        average_buckets: int = 5,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        if feed_size < 1 or bucket_seconds <= 0 or average_buckets < 1:
            raise ValueError("feed_size, bucket_seconds and average_buckets must be positive")
        if history_seconds < bucket_seconds:
            raise ValueError("history_seconds must cover at least one bucket")
        self.feed_size = feed_size
        self.bucket_seconds = bucket_seconds
        self.history_points = int(history_seconds / bucket_seconds)
        self._clock = clock
        self._wall_clock = wall_clock
        self.started_at = clock()
        # Written by the consumer (add), emptied by the UI tick (drain).
        self._pending_counts = dict.fromkeys(CATEGORIES, 0)
        self._pending_items: deque[SSEEvent | StreamGap] = deque(maxlen=feed_size)
        self._pending_total = 0
        self._last_arrival: float | None = None
        self._newest: SSEEvent | None = None
        # Read by the views.
        self.counts: dict[SSEEventCategory, int] = dict.fromkeys(CATEGORIES, 0)
        self.total = 0
        self.gaps = 0
        self.feed: deque[FeedRow] = deque(maxlen=feed_size)  # newest first
        self.rate_history: deque[RatePoint] = deque(maxlen=self.history_points)
        self._recent_totals: deque[float] = deque(maxlen=average_buckets)
        self._bucket_end = self.started_at + bucket_seconds
        self._bucket_counts = [0] * len(CATEGORIES)
        self._pending_gaps = 0

    # -- consumer side ------------------------------------------------------------------------

    def add(self, item: SSEEvent | StreamGap) -> None:
        """Record one stream item; constant time and memory, safe at any rate."""
        self._pending_items.append(item)
        if isinstance(item, StreamGap):
            self._pending_gaps += 1
            return
        self._pending_counts[item.category] += 1
        self._pending_total += 1
        self._last_arrival = self._clock()
        self._newest = item

    @property
    def pending(self) -> int:
        """Items held for the next drain (bounded by the feed size)."""
        return len(self._pending_items)

    # -- UI side ------------------------------------------------------------------------------

    def drain(self) -> Frame:
        """Fold everything added since the previous drain into the aggregates: one frame."""
        now = self._clock()
        changed = bool(self._pending_items)
        added: dict[SSEEventCategory, int] = {}
        for index, category in enumerate(CATEGORIES):
            count = self._pending_counts[category]
            if count:
                added[category] = count
                self.counts[category] += count
                self._bucket_counts[index] += count
                self._pending_counts[category] = 0
        self.total += self._pending_total
        self._pending_total = 0
        self.gaps += self._pending_gaps
        self._pending_gaps = 0
        new_rows = len(self._pending_items)
        wall_now = self._wall_clock()
        for item in self._pending_items:
            if isinstance(item, StreamGap):
                self.feed.appendleft(FeedRow.of_gap(item, datetime.fromtimestamp(wall_now, UTC)))
            else:
                self.feed.appendleft(FeedRow.of_event(item))
        self._pending_items.clear()
        points = self._close_buckets(now, wall_now)
        return Frame(
            changed=changed,
            total=self.total,
            counts=dict(self.counts),
            new_rows=new_rows,
            rate_points=points,
            events_per_second=self.events_per_second,
            seconds_since_last=None if self._last_arrival is None else now - self._last_arrival,
            newest_event_id=None if self._newest is None else str(self._newest.event_id),
            gaps=self.gaps,
            added=added,
        )

    @property
    def events_per_second(self) -> float:
        """Mean total rate over the last few closed buckets (0 before the first one closes)."""
        if not self._recent_totals:
            return 0.0
        return sum(self._recent_totals) / len(self._recent_totals)

    def _close_buckets(self, now: float, wall_now: float) -> tuple[RatePoint, ...]:
        if now < self._bucket_end:
            return ()
        # After a long stall (a suspended laptop), skip buckets the history cannot hold anyway.
        behind = int((now - self._bucket_end) / self.bucket_seconds)
        if behind >= self.history_points:
            self._bucket_end += (behind - self.history_points + 1) * self.bucket_seconds
        points = []
        offset = wall_now - now
        while now >= self._bucket_end:
            rates = tuple(count / self.bucket_seconds for count in self._bucket_counts)
            point = RatePoint((self._bucket_end + offset) * 1000.0, rates)
            points.append(point)
            self.rate_history.append(point)
            self._recent_totals.append(point.total)
            self._bucket_counts = [0] * len(CATEGORIES)
            self._bucket_end += self.bucket_seconds
        return tuple(points)
