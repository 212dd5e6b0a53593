"""Realistic demo traffic: a few users whose syncs, imports, AI chats, portfolio moves and
security alerts unfold as little stories, with bursts, quiet spells, failures and broadcasts.

Powers the embedded dashboard (``ssewatch serve`` with no Redis), ``ssewatch demo`` against a
real Redis, and the notebooks. Deterministic for a given ``seed``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

from sse_core import SSEEvent, SSEPublisherProtocol, checked, epoch_ms, uuid7
from sse_core import SSEEventType as T

log = logging.getLogger(__name__)

_NAMESPACE = UUID("6f1c2a4e-1f3b-4c8e-9a57-2b1d9e0c7a11")
DEMO_USER_NAMES = ("alice", "bob", "carol", "dave")
DEMO_USERS: dict[str, UUID] = {name: uuid5(_NAMESPACE, name) for name in DEMO_USER_NAMES}
BROADCAST_USER = UUID(int=0)  # user_id carried by broadcast events
PROVIDERS = ("plaid", "schwab", "coinbase", "fidelity")
_AI_WORDS = (
    "your",
    "spending",
    "on",
    "dining",
    "fell",
    "twelve",
    "percent",
    "while",
    "savings",
    "grew",
)


@dataclass
class _Story:
    """A sequence of (event type, payload) a user goes through, e.g. a sync that may fail."""

    steps: Iterator[tuple[T, dict[str, Any]]]


@dataclass
class DemoTraffic:
    """Generates events; :meth:`run` publishes them at ``rate`` events/s on average."""

    publisher: SSEPublisherProtocol
    users: tuple[UUID, ...] = tuple(DEMO_USERS.values())
    rate: float = 20.0
    seed: int | None = None
    broadcast_share: float = 0.01
    published: int = 0
    failed: int = 0  # events whose publish failed (Redis unreachable): dropped, not retried
    _failing_since: float | None = field(init=False, default=None)
    _failed_at_outage: int = field(init=False, default=0)
    _rng: random.Random = field(init=False)
    _stories: dict[UUID, list[_Story]] = field(init=False, default_factory=dict)
    _balances: dict[UUID, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        for user in self.users:
            self._stories[user] = []
            self._balances[user] = round(self._rng.uniform(5_000, 250_000), 2)

    def next_event(self, at_ms: int | None = None) -> SSEEvent:
        """The next event of the simulation (not published), made now or at ``at_ms``."""
        event = self._next_event()
        if at_ms is None:
            return event
        # A UUIDv7 id carries its time, so the id and occurred_at move together.
        return event.model_copy(
            update={
                "event_id": uuid7(now_ms=at_ms),
                "occurred_at": datetime.fromtimestamp(at_ms / 1000, UTC),
            }
        )

    def _next_event(self) -> SSEEvent:
        rng = self._rng
        if rng.random() < self.broadcast_share:
            provider = rng.choice(PROVIDERS)
            return SSEEvent(
                event_type=T.PROVIDER_DISCONNECTED,
                user_id=BROADCAST_USER,
                data={"provider": provider, "reason": "scheduled maintenance", "broadcast": True},
            )
        # Users are not equally busy: the first is the most active.
        weights = [1.0 / (i + 1) for i in range(len(self.users))]
        user = rng.choices(self.users, weights)[0]
        stories = self._stories[user]
        if not stories or rng.random() < 0.15:
            stories.append(_Story(self._new_story(user)))
        story = rng.choice(stories)
        step = next(story.steps, None)
        if step is None:
            stories.remove(story)
            return self._next_event()
        event_type, data = step
        return SSEEvent(event_type=event_type, user_id=user, data=data)

    def burst_factor(self, now: float) -> float:
        """Slow waves of activity with occasional quiet spells, like a real day compressed."""
        wave = 0.6 + 0.4 * math.sin(now / 20.0) + 0.3 * math.sin(now / 3.1)
        return max(0.05, wave)

    async def run(self, duration: float | None = None, max_events: int | None = None) -> int:
        """Publish until ``duration`` seconds or ``max_events`` pass (forever if both ``None``)."""
        start = time.monotonic()
        batch_interval = 0.1
        carry = 0.0
        while True:
            elapsed = time.monotonic() - start
            if duration is not None and elapsed >= duration:
                break
            if max_events is not None and self.published >= max_events:
                break
            carry += self.rate * self.burst_factor(time.time()) * batch_interval
            count = int(carry)
            carry -= count
            if max_events is not None:
                count = min(count, max_events - self.published)
            if count:
                # checked: a stop request that the Redis client swallowed must still stop us.
                await checked(self.publish_batch(count))
            await asyncio.sleep(batch_interval)
        return self.published

    async def backfill(self, count: int, span_seconds: float) -> int:
        """Publish ``count`` events dated over the last ``span_seconds``, oldest first.

        Times follow the same waves as live traffic, so per-minute views of a freshly started
        demo already have a history to show. Returns the number published.
        """
        end_ms = epoch_ms()
        start_ms = end_ms - int(span_seconds * 1000)
        times: list[int] = []
        while len(times) < count:
            at_ms = self._rng.randrange(start_ms, end_ms)
            if self._rng.random() < self.burst_factor(at_ms / 1000) / 1.3:
                times.append(at_ms)
        times.sort()
        for first in range(0, count, 500):
            await self._publish([self.next_event(at) for at in times[first : first + 500]])
        return count

    async def publish_batch(self, count: int) -> None:
        """Publish ``count`` events in one round trip (broadcasts separately)."""
        await self._publish([self.next_event() for _ in range(count)])

    async def _publish(self, events: list[SSEEvent]) -> None:
        direct = [e for e in events if e.user_id != BROADCAST_USER]
        outcomes: list[tuple[bool, int]] = []
        outcomes.append((await self.publisher.publish_many(direct), len(direct)))
        for event in events:
            if event.user_id == BROADCAST_USER:
                outcomes.append((await self.publisher.broadcast(event), 1))
        lost = sum(n for ok, n in outcomes if not ok)
        self.published += len(events) - lost
        self.failed += lost
        self._track_outage(lost)

    def _track_outage(self, lost: int) -> None:
        """One log line when publishing starts failing and one when it works again.

        An outage fails every batch (ten a second); a line (or traceback) per batch would bury
        the one fact an operator needs: when Redis went away and when it came back.
        """
        if lost and self._failing_since is None:
            self._failing_since = time.monotonic()
            self._failed_at_outage = self.failed - lost
            log.warning("publishing failed (is Redis down?); dropping demo events until it works")
        elif not lost and self._failing_since is not None:
            lasted = time.monotonic() - self._failing_since
            dropped = self.failed - self._failed_at_outage
            self._failing_since = None
            log.warning(
                "publishing works again after %.1f s; %d demo events were dropped", lasted, dropped
            )

    # -- stories ------------------------------------------------------------------------------

    def _new_story(self, user: UUID) -> Iterator[tuple[T, dict[str, Any]]]:
        rng = self._rng
        kind = rng.choices(
            ["sync", "ai", "import", "portfolio", "security", "provider"],
            [30, 25, 10, 20, 7, 8],
        )[0]
        return {
            "sync": self._sync_story,
            "ai": self._ai_story,
            "import": self._import_story,
            "portfolio": self._portfolio_story,
            "security": self._security_story,
            "provider": self._provider_story,
        }[kind](user)

    def _sync_story(self, user: UUID) -> Iterator[tuple[T, dict[str, Any]]]:
        rng = self._rng
        connection = f"conn_{rng.randrange(1, 6)}"
        account = f"acct_{rng.randrange(100, 999)}"
        resource, started, completed, failed, count_field = rng.choice(
            [
                (
                    "accounts",
                    T.SYNC_ACCOUNTS_STARTED,
                    T.SYNC_ACCOUNTS_COMPLETED,
                    T.SYNC_ACCOUNTS_FAILED,
                    "account_count",
                ),
                (
                    "transactions",
                    T.SYNC_TRANSACTIONS_STARTED,
                    T.SYNC_TRANSACTIONS_COMPLETED,
                    T.SYNC_TRANSACTIONS_FAILED,
                    "transaction_count",
                ),
                (
                    "holdings",
                    T.SYNC_HOLDINGS_STARTED,
                    T.SYNC_HOLDINGS_COMPLETED,
                    T.SYNC_HOLDINGS_FAILED,
                    "holding_count",
                ),
            ]
        )
        base: dict[str, Any] = {"connection_id": connection}
        if resource != "accounts":
            base["account_id"] = account
        yield started, dict(base)
        if rng.random() < 0.12:
            error = rng.choice(["provider timeout", "rate limited", "invalid credentials"])
            yield failed, {**base, "error": error}
        else:
            yield completed, {**base, count_field: rng.randrange(1, 400)}

    def _ai_story(self, user: UUID) -> Iterator[tuple[T, dict[str, Any]]]:
        rng = self._rng
        conversation = f"conv_{rng.randrange(1000, 9999)}"
        if rng.random() < 0.4:
            tool = rng.choice(["get_balances", "search_transactions", "forecast_cashflow"])
            yield T.AI_TOOL_EXECUTING, {"conversation_id": conversation, "tool": tool}
        words = _AI_WORDS
        chunks = rng.randrange(3, 12)
        for index in range(chunks):
            chunk = " ".join(rng.sample(words, 2))
            yield (
                T.AI_RESPONSE_CHUNK,
                {"conversation_id": conversation, "chunk": chunk, "index": index},
            )
        yield T.AI_RESPONSE_COMPLETE, {"conversation_id": conversation, "tokens": chunks * 7}

    def _import_story(self, user: UUID) -> Iterator[tuple[T, dict[str, Any]]]:
        rng = self._rng
        import_id = f"imp_{rng.randrange(100, 999)}"
        rows = rng.randrange(200, 5000)
        yield T.IMPORT_STARTED, {"import_id": import_id, "file_name": f"statement_{import_id}.csv"}
        for percent in (20, 40, 60, 80):
            yield (
                T.IMPORT_PROGRESS,
                {
                    "import_id": import_id,
                    "percent": percent,
                    "rows_processed": rows * percent // 100,
                },
            )
            if rng.random() < 0.05:
                yield T.IMPORT_FAILED, {"import_id": import_id, "error": "malformed row"}
                return
        yield T.IMPORT_COMPLETED, {"import_id": import_id, "rows_imported": rows}

    def _portfolio_story(self, user: UUID) -> Iterator[tuple[T, dict[str, Any]]]:
        rng = self._rng
        delta = round(rng.gauss(0, 0.01) * self._balances[user], 2)
        self._balances[user] = round(self._balances[user] + delta, 2)
        account = f"acct_{rng.randrange(100, 999)}"
        yield (
            T.PORTFOLIO_BALANCE_UPDATED,
            {
                "account_id": account,
                "balance": self._balances[user],
                "delta": delta,
                "currency": "USD",
            },
        )
        if rng.random() < 0.5:
            yield (
                T.PORTFOLIO_HOLDINGS_UPDATED,
                {"account_id": account, "holding_count": rng.randrange(3, 40)},
            )
        yield (
            T.PORTFOLIO_NETWORTH_UPDATED,
            {
                "net_worth": self._balances[user],
                "delta": delta,
                "currency": "USD",
            },
        )

    def _security_story(self, user: UUID) -> Iterator[tuple[T, dict[str, Any]]]:
        rng = self._rng
        session = f"sess_{rng.randrange(10_000, 99_999)}"
        ip = f"203.0.113.{rng.randrange(1, 254)}"
        if rng.random() < 0.3:
            attempts = rng.randrange(1, 6)
            for attempt in range(1, attempts + 1):
                yield T.SECURITY_LOGIN_FAILED, {"ip": ip, "attempts": attempt}
            if attempts >= 3:
                yield (
                    T.SECURITY_SESSION_SUSPICIOUS,
                    {"session_id": session, "ip": ip, "reason": "repeated failures"},
                )
                yield (
                    T.SECURITY_SESSION_REVOKED,
                    {"session_id": session, "reason": "suspicious activity"},
                )
            return
        yield (
            T.SECURITY_SESSION_NEW,
            {
                "session_id": session,
                "ip": ip,
                "device": rng.choice(["iOS", "Android", "Chrome", "Firefox"]),
            },
        )
        if rng.random() < 0.2:
            yield T.SECURITY_PASSWORD_CHANGED, {"ip": ip}
        yield T.SECURITY_SESSION_EXPIRING, {"session_id": session, "expires_in_seconds": 300}

    def _provider_story(self, user: UUID) -> Iterator[tuple[T, dict[str, Any]]]:
        rng = self._rng
        provider = rng.choice(PROVIDERS)
        yield T.PROVIDER_TOKEN_EXPIRING, {"provider": provider, "expires_in_seconds": 600}
        if rng.random() < 0.15:
            yield T.PROVIDER_TOKEN_FAILED, {"provider": provider, "error": "refresh token revoked"}
            yield T.PROVIDER_DISCONNECTED, {"provider": provider, "reason": "token refresh failed"}
        else:
            yield T.PROVIDER_TOKEN_REFRESHED, {"provider": provider}
