"""Dropping the duplicates that a replay-then-live hand-over produces.

A subscriber subscribes first and replays second, so events published in between arrive twice:
once in the replay snapshot and once live. Live delivery is FIFO, so the duplicates are the first
live items; once a live event newer than the snapshot (plus a grace for clock skew between
publishers and us) arrives, no duplicate can follow and the remembered ids are released.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from sse_core.events import SSEEvent
from sse_core.ids import epoch_ms

DEFAULT_GRACE_MS = 5_000


class HandOver:
    def __init__(self, grace_ms: int = DEFAULT_GRACE_MS) -> None:
        self.grace_ms = grace_ms
        self._pending: set[UUID] = set()
        self._release_after_ms = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def begin(self, replayed: Iterable[UUID], snapshot_ms: int | None = None) -> None:
        """Remember the ids a replay delivered; ``snapshot_ms`` defaults to now."""
        self._pending.update(replayed)
        now = epoch_ms() if snapshot_ms is None else snapshot_ms
        self._release_after_ms = max(self._release_after_ms, now + self.grace_ms)

    def admit(self, event: SSEEvent) -> bool:
        """``False`` for a live duplicate of a replayed event."""
        if not self._pending:
            return True
        if event.event_id in self._pending:
            self._pending.discard(event.event_id)
            return False
        if event.time_ms > self._release_after_ms:
            self._pending.clear()
        return True
