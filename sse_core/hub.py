"""One shared pub/sub connection per Redis client and event loop, fanned out to subscribers.

Every :class:`~sse_core.subscriber.RedisSSESubscriber` built on the same client (the seed's
request-scoped pattern builds one per connection) attaches here, so a process holds one pub/sub
connection however many subscribers it serves. Channels are reference-counted; each message is
decoded once and offered to every interested subscriber's bounded mailbox.

Knowing *when* a subscription is live matters for gapless resume: after ``SUBSCRIBE`` the hub
sends ``PING`` on the same connection, and its pong (pongs come back in order) proves the server
has processed the subscription. (A bare ``PING``: redis-py mangles ``PING <token>`` replies on
clients created with ``decode_responses=True``; see :func:`_is_pong`.) After a reconnect the
same trick tells when every channel is back, and every subscriber is then sent
:data:`~sse_core.mailbox.RESYNC` to replay what it missed.

Leaving is guaranteed: a consumer is forgotten synchronously, and one hub-owned task (which no
consumer's cancellation can interrupt) reconciles the connection with what is still wanted:
it unsubscribes channels nobody wants (also any a message arrives on, and any redis-py restored
after a reconnect), and closes the connection when nothing is left. Attaching checks after every
await whether its task was cancelled, even when redis-py swallowed it
(:mod:`sse_core.cancellation`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import ConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sse_core.cancellation import checked
from sse_core.categories import SSEEventCategory
from sse_core.codec import MalformedEvent, as_text, decode_payload
from sse_core.connection import pubsub_pool
from sse_core.events import SSEEvent, matches_categories
from sse_core.mailbox import RESYNC, Mailbox

CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_MESSAGE = (b"message", "message")  # a pub/sub message's type, as bytes or decoded


class ConnectionState(StrEnum):
    IDLE = "idle"  # no subscriptions, no connection held
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    state: ConnectionState
    reconnects: int
    subscriptions: int
    malformed: int


class DeliveryCounters(Protocol):
    """Where the hub reports per-subscriber losses (a subscriber's stats object)."""

    malformed: int
    dropped: int


class Subscription:
    """One consumer's interest: its channels, its category filter and its mailbox."""

    __slots__ = ("_sources", "categories", "channels", "mailbox", "stats")

    def __init__(
        self,
        channels: Iterable[str],
        categories: frozenset[SSEEventCategory],
        capacity: int,
        stats: DeliveryCounters,
        max_bytes: int | None = None,
    ) -> None:
        self.channels = tuple(channels)
        self.categories = categories
        # Items carry the index of the channel (= stream) they came from: recoveries replay
        # each stream after the last event the consumer got from it.
        self.mailbox: Mailbox[tuple[int, SSEEvent]] = Mailbox(capacity, max_bytes)
        self.stats = stats
        self._sources = {channel: index for index, channel in enumerate(self.channels)}

    def offer(self, channel: str, event: SSEEvent, size: int = 0) -> None:
        """``size``: the message's bytes on the wire from Redis (counts toward the byte bound)."""
        if not matches_categories(event, self.categories):
            return
        if not self.mailbox.put((self._sources[channel], event), size):
            self.stats.dropped += 1


def reconnect_backoff() -> ExponentialWithJitterBackoff:
    """The delays between reconnect attempts, for the hub and for subscribers alike."""
    return ExponentialWithJitterBackoff(cap=10.0, base=0.05)


def _is_pong(message: dict[str, Any]) -> bool:
    """A reply to our bare PING.

    On ``decode_responses=True`` clients redis-py indexes the reply string ``"PONG"`` as if it
    were a list, giving type ``"P"``, channel ``"O"`` and data ``"N"``; accept that shape too.
    """
    kind = message["type"]
    if kind == "pong":
        return not message["data"]
    return f"{kind}{message['channel']}{message['data']}".lower() == "pon"


class ChannelRegistry:
    """Who wants which channel, kept the same way by every hub (one server or a cluster).

    Forgetting a subscription is immediate; making the connections match (unsubscribing what
    nobody wants, going idle when nobody is left) is one reconciling task per hub, which the
    hub's :meth:`_reconcile` implements for its connections.
    """

    _reconcile_task_name = "ssewatch-pubsub-reconcile"

    def __init__(self) -> None:
        self._by_channel: dict[str, list[Subscription]] = {}
        # Channels that may be subscribed on the server with nobody wanting them any more.
        self._unwanted: set[str] = set()
        self._reconciler: asyncio.Task[None] | None = None
        self.state = ConnectionState.IDLE
        self.reconnects = 0
        self.malformed = 0

    def status(self) -> ConnectionStatus:
        subs = {id(s) for subs in self._by_channel.values() for s in subs}
        return ConnectionStatus(self.state, self.reconnects, len(subs), self.malformed)

    def _register(self, sub: Subscription) -> list[str]:
        """Add ``sub``; the channels nobody wanted before (to subscribe now)."""
        new = [ch for ch in sub.channels if ch not in self._by_channel]
        for ch in sub.channels:
            self._by_channel.setdefault(ch, []).append(sub)
        return new

    async def detach(self, sub: Subscription) -> None:
        """Forget ``sub`` now; return once no connection serves what nobody wants.

        The network part runs in the hub's own task: cancelling the caller cannot leave a
        channel subscribed (nor a connection held).
        """
        for ch in sub.channels:
            subs = self._by_channel.get(ch, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._by_channel.pop(ch, None)
                self._unwanted.add(ch)
        await asyncio.shield(self._reconcile_soon())

    def _reconcile_soon(self) -> asyncio.Task[None]:
        """The reconciling task; one at a time, and it loops until nothing is left to do."""
        if self._reconciler is None or self._reconciler.done():
            self._reconciler = asyncio.get_running_loop().create_task(
                self._reconcile(), name=self._reconcile_task_name
            )
        return self._reconciler

    async def _reconcile(self) -> None:
        raise NotImplementedError


Client = TypeVar("Client")
H = TypeVar("H")


class PerClientAndLoop(Generic[Client, H]):
    """One hub per client and event loop, forgotten with either.

    A hub's connections and tasks belong to the loop that opened them, so a client used from two
    loops (a notebook's kernel loop and a test's) gets two hubs.
    """

    def __init__(self) -> None:
        self._hubs: weakref.WeakKeyDictionary[
            Client, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, H]
        ] = weakref.WeakKeyDictionary()

    def get(self, client: Client, make: Callable[[], H]) -> H:
        loop = asyncio.get_running_loop()
        per_loop = self._hubs.setdefault(client, weakref.WeakKeyDictionary())
        hub = per_loop.get(loop)
        if hub is None:
            hub = per_loop[loop] = make()
        return hub


class SubscriptionHub(ChannelRegistry):
    @classmethod
    def for_client(
        cls, redis_client: Redis, logger: logging.Logger | None = None
    ) -> SubscriptionHub:
        """The hub shared by everything using ``redis_client`` on the running loop."""
        return _standalone_hubs.get(redis_client, lambda: cls(redis_client, logger))

    def __init__(self, redis_client: Redis, logger: logging.Logger | None = None) -> None:
        super().__init__()
        self._redis = redis_client
        self._log = logger or logging.getLogger(__name__)
        self._pubsub: PubSub | None = None
        self._pool: ConnectionPool | None = None  # our own pub/sub pool, when we made one
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # One entry per PING in flight: the waiter it confirms, or None for a resync PING.
        self._pings: deque[asyncio.Future[None] | None] = deque()
        # Waiters whose PING was lost with a connection; released when the resync completes.
        self._stranded: list[asyncio.Future[None]] = []
        self._backoff = reconnect_backoff()
        # Pending while a reconnect's resubscription is unconfirmed (see resynced()).
        self._resync: asyncio.Future[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def attach(self, sub: Subscription) -> None:
        """Register ``sub`` and return once its channels are live on the server.

        If the calling task is cancelled meanwhile, ``CancelledError`` is raised and ``sub`` is
        detached, even when redis-py swallowed the cancellation (every await is ``checked``).
        """
        confirmed = asyncio.get_running_loop().create_future()
        try:
            async with self._lock:
                if self._pubsub is None:
                    await checked(self._open())
                assert self._pubsub is not None
                new = self._register(sub)
                try:
                    if new:
                        await checked(self._pubsub.subscribe(*new))
                    # Queue the waiter before sending: the reader may see the pong before the
                    # send returns.
                    self._pings.append(confirmed)
                    await checked(self._pubsub.ping())
                except CONNECTION_ERRORS:
                    # The reader reconnects, resubscribes everything, then releases this waiter.
                    if confirmed in self._pings:
                        self._pings.remove(confirmed)
                    self._stranded.append(confirmed)
                    self._log.info("subscribe deferred until Redis is reachable again")
            await checked(confirmed)
        except BaseException:
            await self.detach(sub)
            raise

    async def _reconcile(self) -> None:
        async with self._lock:
            while self._unwanted or (not self._by_channel and self._pubsub is not None):
                if not self._by_channel:
                    self._unwanted.clear()
                    await self._close()
                    continue
                gone = [ch for ch in self._unwanted if ch not in self._by_channel]
                self._unwanted.clear()
                if gone and self._pubsub is not None:
                    # On failure, a reconnect resubscribes only what is wanted (and unsubscribes
                    # the rest); a message on an unwanted channel brings it back here.
                    with contextlib.suppress(*CONNECTION_ERRORS):
                        await self._pubsub.unsubscribe(*gone)

    async def _open(self) -> None:
        self.state = ConnectionState.CONNECTING
        # Bytes replies, RESP2 where it is faster: see pubsub_pool.
        self._pool = pubsub_pool(self._redis.connection_pool)
        pubsub = PubSub(self._pool) if self._pool is not None else self._redis.pubsub()
        try:
            await pubsub.connect()  # type: ignore[no-untyped-call]
        except BaseException as exc:
            # A cancelled attach leaves the hub as it found it; a failed one says why.
            cancelled = isinstance(exc, asyncio.CancelledError)
            self.state = ConnectionState.IDLE if cancelled else ConnectionState.RECONNECTING
            await self._close_pool()
            raise
        if pubsub.connection is not None:
            pubsub.connection.register_connect_callback(self._on_reconnect)
        self._pubsub = pubsub
        self._reader = asyncio.create_task(self._read_loop(pubsub), name="ssewatch-pubsub-reader")
        self.state = ConnectionState.CONNECTED

    async def _close(self) -> None:
        reader, pubsub = self._reader, self._pubsub
        self._reader = self._pubsub = None
        if pubsub is not None and pubsub.connection is not None:
            pubsub.connection.deregister_connect_callback(self._on_reconnect)
        while reader is not None and not reader.done():
            # Again if need be: a cancellation swallowed between two checks is asked for anew.
            reader.cancel()
            await asyncio.wait({reader}, timeout=1)
        if pubsub is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8.2
        await self._close_pool()
        for future in [*self._pings, *self._stranded]:
            if future is not None:
                future.cancel()
        self._pings.clear()
        self._stranded.clear()
        self._end_resync()
        self.state = ConnectionState.IDLE

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await pool.aclose()

    async def _on_reconnect(self, connection: Any) -> None:
        """Called by redis-py after the pub/sub connection is re-established.

        RESYNC is queued now, before any message read from the new connection, so a consumer
        replays from the last event it got *before* the drop; it waits for :meth:`resynced`.
        """
        if self._pubsub is None or self._pubsub.connection is not connection:
            return  # a pooled connection that was ours before the hub went idle
        loop = asyncio.get_running_loop()
        if self._resync is None or self._resync.done():
            self._resync = loop.create_future()
        for sub in {id(s): s for subs in self._by_channel.values() for s in subs}.values():
            sub.mailbox.signal(RESYNC)
        # Keep a reference: the loop only holds tasks weakly.
        task = loop.create_task(self._resubscribe_all())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def resynced(self) -> None:
        """Return once every channel is confirmed live again after the latest reconnect."""
        if self._resync is not None and not self._resync.done():
            await asyncio.shield(self._resync)

    def _end_resync(self) -> None:
        if self._resync is not None and not self._resync.done():
            self._resync.set_result(None)

    async def _resubscribe_all(self) -> None:
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            self.reconnects += 1
            self.state = ConnectionState.RECONNECTING
            self._stranded.extend(f for f in self._pings if f is not None)
            self._pings.clear()
            known = {as_text(ch) for ch in pubsub.channels}
            missing = [ch for ch in self._by_channel if ch not in known]
            # redis-py restores what it had subscribed, including channels whose UNSUBSCRIBE
            # was lost with the old connection.
            unwanted = [ch for ch in known if ch not in self._by_channel]
            try:
                if unwanted:
                    await pubsub.unsubscribe(*unwanted)
                if missing:
                    await pubsub.subscribe(*missing)
                self._pings.append(None)
                await pubsub.ping()
            except CONNECTION_ERRORS:
                self._log.warning("resubscribe failed; retrying on the next reconnect")

    async def _read_loop(self, pubsub: PubSub) -> None:
        """Read the pub/sub connection: messages straight to :meth:`_dispatch`, the rest
        (subscribe confirmations, pongs) through redis-py's ``handle_message``.

        Reading replies off the connection directly skips, per message, what
        ``PubSub.get_message`` adds on top (health check, retry wrapper, a dict per message,
        metrics hooks): ~half of the consumer's time in the delivery benchmark.
        """
        failures = 0
        while True:
            try:
                conn = pubsub.connection
                if conn is None or not conn.is_connected:
                    raise RedisConnectionError("pub/sub connection closed")
                # checked: _close() cancels this task, and redis-py may swallow that.
                response = await checked(conn.read_response(timeout=math.inf, push_request=True))
            except Exception as exc:
                if not isinstance(exc, CONNECTION_ERRORS):
                    # A reply the client could not parse: the connection's state is unknown, so
                    # it is dropped; the reconnect resyncs every subscriber from retention.
                    self.malformed += 1
                    self._log.warning("unreadable pub/sub reply (%r); reconnecting", exc)
                    if pubsub.connection is not None:
                        await pubsub.connection.disconnect()
                failures += 1
                self.state = ConnectionState.RECONNECTING
                delay = self._backoff.compute(failures)
                self._log.warning("Redis pub/sub connection lost; retrying in %.2fs", delay)
                await asyncio.sleep(delay)
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await pubsub.connect()  # type: ignore[no-untyped-call]  # runs _on_reconnect
                continue
            failures = 0
            if isinstance(response, list) and len(response) == 3 and response[0] in _MESSAGE:
                self._dispatch(as_text(response[1]), response[2])
                continue
            message = await pubsub.handle_message(response)
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            self._dispatch(as_text(message["channel"]), message["data"])
        elif _is_pong(message) and self._pings:
            self._on_pong(self._pings.popleft())

    def _on_pong(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
            return
        # The resync PING: every channel is subscribed again on the new connection.
        self.state = ConnectionState.CONNECTED
        for future in self._stranded:
            if not future.done():
                future.set_result(None)
        self._stranded.clear()
        self._end_resync()

    def _dispatch(self, channel: str, payload: Any) -> None:
        subs = self._by_channel.get(channel)
        if not subs:
            # Still subscribed on the server, wanted by nobody: unsubscribe it.
            if channel not in self._unwanted:
                self._unwanted.add(channel)
                self._reconcile_soon()
            return
        try:
            event = decode_payload(payload)
        except MalformedEvent as exc:
            self.malformed += 1
            for sub in subs:
                sub.stats.malformed += 1
            self._log.warning("skipped malformed message on %s: %s", channel, exc)
            return
        size = len(payload)
        for sub in subs:
            sub.offer(channel, event, size)


_standalone_hubs: PerClientAndLoop[Redis, SubscriptionHub] = PerClientAndLoop()
