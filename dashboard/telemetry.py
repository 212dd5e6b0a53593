"""Process-wide counts behind ``GET /metrics``: what every dashboard view and the SSE endpoint did.

Plain integers, no Prometheus here (pure, tested without a server). Dashboard views report
per-category deliveries once per UI tick (never per event), and register their subscribers so
that a scrape can sum their :class:`~sse_core.subscriber.SubscriberStats`; a subscriber that is
replaced (another user picked, a tab closed) is folded into retired totals, so counters never
go backwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from sse_core import RedisSSESubscriber, SSEEventCategory, SubscriberStats


def add_stats(total: SubscriberStats, stats: SubscriberStats) -> None:
    """``total += stats``, field by field (every counter SubscriberStats has, now and later)."""
    for f in fields(SubscriberStats):
        setattr(total, f.name, getattr(total, f.name) + getattr(stats, f.name))


@dataclass
class Telemetry:
    """What the dashboard views of one process did (one per :class:`~dashboard.backend.Backend`)."""

    delivered: dict[SSEEventCategory, int] = field(
        default_factory=lambda: dict.fromkeys(SSEEventCategory, 0)
    )
    replays: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})
    sessions: int = 0
    _live: dict[int, RedisSSESubscriber] = field(default_factory=dict)
    _retired: SubscriberStats = field(default_factory=SubscriberStats)

    def count_delivered(self, added: Mapping[SSEEventCategory, int]) -> None:
        for category, count in added.items():
            self.delivered[category] += count

    def count_replay(self, complete: bool) -> None:
        self.replays[complete] += 1

    def attach(self, subscriber: RedisSSESubscriber) -> None:
        self._live[id(subscriber)] = subscriber

    def retire(self, subscriber: RedisSSESubscriber) -> None:
        """The subscriber is done: keep its counts, forget the object."""
        if self._live.pop(id(subscriber), None) is not None:
            add_stats(self._retired, subscriber.stats)

    def subscriber_stats(self) -> SubscriberStats:
        """Totals over every subscriber the dashboard views ever had, live and retired."""
        total = SubscriberStats()
        for stats in (self._retired, *(s.stats for s in self._live.values())):
            add_stats(total, stats)
        return total
