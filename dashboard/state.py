"""What one dashboard view has received, folded into the numbers and rows the UI shows.

Two sides, one owner each. The consumer task calls :meth:`LiveState.add` per stream item: O(1),
no allocation beyond a bounded deque, so it keeps up with thousands of events per second. The
periodic UI callback calls :meth:`LiveState.drain` once per tick and gets one :class:`Tick`,
whatever the event rate. Every collection is bounded, so a session can run for days.

A view covers a time window (Grafana's "last 15 minutes"): it opens with the window's history
from retention (events older than ``live_from_ms``, placed by their own time) and goes on live
(placed by arrival). Counts, failures and rates are those of the window, sliding with it.

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

from sse_core import FAILURE_TYPES, SSEEvent, SSEEventCategory, StreamGap, severity_of

Clock = Callable[[], float]

CATEGORIES: tuple[SSEEventCategory, ...] = tuple(SSEEventCategory)
_SLOT = {category: index for index, category in enumerate(CATEGORIES)}
_FAILURES = len(CATEGORIES)  # the slot after the categories counts failures
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


class FeedRow:
    """One line of the feed: an event (kept whole, for the inspector) or a gap marker.

    Display text is computed on first use: at thousands of events per second most rows are
    pushed out of the bounded feed before anyone looks at them.
    """

    __slots__ = ("_gap_text", "_search", "_summary", "_time", "event")

    def __init__(self, event: SSEEvent | None, gap_text: tuple[str, str, str] | None = None):
        self.event = event
        self._gap_text = gap_text  # (time, event type, summary) of a gap marker
        self._summary: str | None = None
        self._time: str | None = None
        self._search: str | None = None

    @classmethod
    def of_event(cls, event: SSEEvent) -> FeedRow:
        return cls(event)

    @classmethod
    def of_gap(cls, gap: StreamGap, at: datetime) -> FeedRow:
        after = f" after {gap.after_event_id}" if gap.after_event_id else ""
        summary = f"events may be missing{after}; retention could not fill the gap"
        return cls(None, (clock_time(at), f"gap ({gap.reason})", summary))

    @property
    def event_id(self) -> str:
        return str(self.event.event_id) if self.event is not None else ""

    @property
    def time(self) -> str:
        if self._gap_text is not None:
            return self._gap_text[0]
        if self._time is None:
            assert self.event is not None
            self._time = clock_time(self.event.occurred_at)
        return self._time

    @property
    def category(self) -> str:
        return self.event.category.value if self.event is not None else GAP_CATEGORY

    @property
    def event_type(self) -> str:
        if self._gap_text is not None:
            return self._gap_text[1]
        assert self.event is not None
        return self.event.event_type.value

    @property
    def severity(self) -> str:
        """``info`` / ``warning`` / ``failure`` from the registry; a gap is a warning."""
        if self.event is None:
            return "warning"
        return severity_of(self.event.event_type).value

    @property
    def summary(self) -> str:
        if self._gap_text is not None:
            return self._gap_text[2]
        if self._summary is None:
            assert self.event is not None
            self._summary = summarize(self.event.data)
        return self._summary

    def search_text(self) -> str:
        """Lower-cased text a feed search looks in: type, id and the whole payload."""
        if self._search is None:
            if self.event is None:
                self._search = f"{self.event_type} {self.summary}".lower()
            else:
                payload = json.dumps(self.event.data, ensure_ascii=False, default=str)
                self._search = f"{self.event_type} {self.event_id} {payload}".lower()
        return self._search


@dataclass(frozen=True, slots=True)
class RatePoint:
    """Events per second per category over one closed bucket (``rates`` in CATEGORIES order)."""

    time_ms: float  # wall-clock epoch milliseconds at the end of the bucket
    rates: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.rates)


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the numbers cover: the window, and how much of its history retention still held.

    ``history_from_ms`` is where the view's history starts: the window's start when retention
    covered it (``complete``), else the oldest event retention still had (``None``: none).
    """

    window_seconds: float
    live_from_ms: float
    complete: bool
    history_from_ms: float | None

    @property
    def history_seconds(self) -> float:
        """How far back the history reaches from when the view opened."""
        start = self.history_from_ms if self.history_from_ms is not None else self.live_from_ms
        return max((self.live_from_ms - start) / 1000.0, 0.0)


@dataclass(frozen=True, slots=True)
class Tick:
    """One tick's worth of changes for the UI.

    ``total``, ``counts`` and ``failures`` are those of the time window. ``new_rows`` says how
    many feed rows arrived since the previous tick; ``rate_points`` are the buckets that closed
    since then, oldest first; ``redraw`` says history arrived, so charts must be redrawn whole.
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
    added: Mapping[SSEEventCategory, int] = field(default_factory=dict)  # this tick's events
    failures: int = 0
    failures_per_minute: float = 0.0
    redraw: bool = False
    coverage: Coverage | None = None


def _zeros() -> list[int]:
    return [0] * (len(CATEGORIES) + 1)


class LiveState:
    """Aggregates for one subscription over a sliding time window: counts, failures, rates,
    and a bounded feed (the newest ``keep`` rows; ``feed_size`` of them are shown).

    Live events are bucketed by arrival (at drain time, so a count may land in the neighbouring
    bucket by at most one tick); back-filled ones (older than ``live_from_ms``) by their time.
    """

    def __init__(
        self,
        *,
        feed_size: int = 50,
        keep: int | None = None,
        window_seconds: float = 60.0,
        bucket_seconds: float = 1.0,
        average_buckets: int = 5,
        live_from_ms: float | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        if feed_size < 1 or bucket_seconds <= 0 or average_buckets < 1:
            raise ValueError("feed_size, bucket_seconds and average_buckets must be positive")
        if window_seconds < bucket_seconds:
            raise ValueError("window_seconds must cover at least one bucket")
        self.feed_size = feed_size
        self.keep = max(keep or feed_size, feed_size)
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self.history_points = int(window_seconds / bucket_seconds)
        self._bucket_ms = bucket_seconds * 1000.0
        self._average = average_buckets
        self._clock = clock
        self._wall_clock = wall_clock
        self.started_at = clock()
        self.live_from_ms = wall_clock() * 1000.0 if live_from_ms is None else live_from_ms
        self.window_start_ms = self.live_from_ms - window_seconds * 1000.0
        # Written by the consumer (add), emptied by the UI tick (drain).
        self._pending_live = _zeros()
        self._pending_history: dict[int, list[int]] = {}
        self._pending_items: deque[SSEEvent | StreamGap] = deque(maxlen=self.keep)
        self._pending_gaps = 0
        self._last_arrival: float | None = None
        self._newest: SSEEvent | None = None
        self._newest_history_ms: float | None = None
        self._oldest_history_ms: float | None = None
        self._history_incomplete = False
        # Read by the views.
        self.counts: dict[SSEEventCategory, int] = dict.fromkeys(CATEGORIES, 0)
        self.total = 0
        self.failures = 0
        self.gaps = 0
        self.feed: deque[FeedRow] = deque(maxlen=self.keep)  # newest first
        self._buckets: dict[int, list[int]] = {}
        self._last_closed = self._index(self.live_from_ms) - 1

    # -- consumer side ------------------------------------------------------------------------

    def add(self, item: SSEEvent | StreamGap) -> None:
        """Record one stream item; constant time and memory, safe at any rate."""
        if isinstance(item, StreamGap):
            if item.reason == "resume":
                # Only the opening back-fill resumes: retention does not reach the window start.
                self._history_incomplete = True
                return
            self._pending_items.append(item)
            self._pending_gaps += 1
            return
        self._pending_items.append(item)
        self._newest = item
        at_ms = item.time_ms
        if at_ms < self.live_from_ms:
            index = int(at_ms // self._bucket_ms)
            slots = self._pending_history.get(index)
            if slots is None:
                slots = self._pending_history[index] = _zeros()
            if self._oldest_history_ms is None or at_ms < self._oldest_history_ms:
                self._oldest_history_ms = at_ms
            if self._newest_history_ms is None or at_ms > self._newest_history_ms:
                self._newest_history_ms = at_ms
        else:
            slots = self._pending_live
            self._last_arrival = self._clock()
        slots[_SLOT[item.category]] += 1
        if item.event_type in FAILURE_TYPES:
            slots[_FAILURES] += 1

    @property
    def pending(self) -> int:
        """Items held for the next drain (bounded by ``keep``)."""
        return len(self._pending_items)

    # -- UI side ------------------------------------------------------------------------------

    def _index(self, ms: float) -> int:
        return int(ms // self._bucket_ms)

    def drain(self) -> Tick:
        """Fold everything added since the previous drain into the aggregates: one tick."""
        now = self._clock()
        wall_now = self._wall_clock()
        now_index = self._index(wall_now * 1000.0)
        oldest_index = now_index - self.history_points + 1  # the window, with the open bucket
        changed = bool(self._pending_items)
        redraw = bool(self._pending_history)
        for index, counts in self._pending_history.items():
            if index >= oldest_index:
                self._add_to_bucket(min(index, now_index), counts)
        self._pending_history.clear()
        added = {c: n for c, n in zip(CATEGORIES, self._pending_live, strict=False) if n}
        if any(self._pending_live):
            self._add_to_bucket(now_index, self._pending_live)
            self._pending_live = _zeros()
        for stale in [i for i in self._buckets if i < oldest_index]:
            del self._buckets[stale]
        self.gaps += self._pending_gaps
        self._pending_gaps = 0
        new_rows = len(self._pending_items)
        for item in self._pending_items:
            if isinstance(item, StreamGap):
                self.feed.appendleft(FeedRow.of_gap(item, datetime.fromtimestamp(wall_now, UTC)))
            else:
                self.feed.appendleft(FeedRow.of_event(item))
        self._pending_items.clear()
        self._sum_window()
        points = self._close_buckets(now_index)
        coverage = self.coverage()
        start_ms = coverage.history_from_ms or self.live_from_ms
        span = min(self.window_seconds, wall_now - start_ms / 1000.0)
        minutes = max(span, 60.0) / 60.0  # a per-minute rate needs a minute to mean anything
        return Tick(
            changed=changed or redraw,
            total=self.total,
            counts=dict(self.counts),
            new_rows=new_rows,
            rate_points=points,
            events_per_second=self.events_per_second,
            seconds_since_last=self._since_last(now, wall_now),
            newest_event_id=None if self._newest is None else str(self._newest.event_id),
            gaps=self.gaps,
            added=added,
            failures=self.failures,
            failures_per_minute=self.failures / minutes,
            redraw=redraw,
            coverage=coverage,
        )

    def _add_to_bucket(self, index: int, counts: list[int]) -> None:
        bucket = self._buckets.get(index)
        if bucket is None:
            self._buckets[index] = list(counts)
        else:
            for slot, count in enumerate(counts):
                bucket[slot] += count

    def _sum_window(self) -> None:
        sums = [sum(column) for column in zip(*self._buckets.values(), strict=True)]
        if not sums:
            sums = _zeros()
        self.counts = dict(zip(CATEGORIES, sums, strict=False))
        self.total = sum(sums[:_FAILURES])
        self.failures = sums[_FAILURES]

    def _since_last(self, now: float, wall_now: float) -> float | None:
        if self._last_arrival is not None:
            return now - self._last_arrival
        if self._newest_history_ms is not None:
            return max(wall_now - self._newest_history_ms / 1000.0, 0.0)
        return None

    def _point(self, index: int) -> RatePoint:
        counts = self._buckets.get(index)
        rates = (
            tuple(c / self.bucket_seconds for c in counts[:_FAILURES])
            if counts
            else (0.0,) * len(CATEGORIES)
        )
        return RatePoint((index + 1) * self._bucket_ms, rates)

    def _close_buckets(self, now_index: int) -> tuple[RatePoint, ...]:
        first = max(self._last_closed + 1, now_index - self.history_points)
        self._last_closed = now_index - 1
        return tuple(self._point(i) for i in range(first, now_index))

    @property
    def rate_history(self) -> list[RatePoint]:
        """Every closed bucket of the window, oldest first (zeros where nothing happened)."""
        end = self._last_closed + 1
        return [self._point(i) for i in range(end - self.history_points + 1, end)]

    @property
    def events_per_second(self) -> float:
        """Mean total rate over the last few closed buckets."""
        end = self._last_closed + 1
        points = [self._point(i) for i in range(end - self._average, end)]
        return sum(p.total for p in points) / len(points)

    def coverage(self) -> Coverage:
        if not self._history_incomplete:
            start: float | None = self.window_start_ms
        else:
            start = self._oldest_history_ms
        return Coverage(self.window_seconds, self.live_from_ms, not self._history_incomplete, start)
