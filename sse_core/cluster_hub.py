"""The Redis Cluster variant of the hub: one pub/sub connection per node, shared by everyone.

On a cluster every channel is a *shard* channel (``SSUBSCRIBE``), served by the node that owns
its slot (the user's hash tag; the broadcast has its own). This hub keeps one connection per
such node per client and event loop, so a process holds at most one pub/sub connection per
primary however many subscribers it serves, and fans messages out to the subscribers' bounded
mailboxes exactly as :class:`~sse_core.hub.SubscriptionHub` does for one server.

It owns its connections instead of using redis-py's ``ClusterPubSub`` (whose reader polls each
node in turn with a timeout): each node gets its own reader task, and the hub can tell when a
subscription is live — a ``PING`` after ``SSUBSCRIBE`` on the same connection, answered in
order — which gapless resume needs on every node a subscriber reads from.

The topology moves under a live subscription in three ways, and each ends the same way (a
*remap*): the affected subscribers get :data:`~sse_core.mailbox.RESYNC` first, the slot map is
refreshed, their channels are subscribed on the nodes that own them now and confirmed, and
:meth:`ClusterHub.resynced` then lets them replay what they missed from retention.

- a node's connection fails (crash failover, restart);
- a node sends ``sunsubscribe`` for a channel we did not leave (its slot migrated away);
- a liveness probe goes unanswered: a connection that received nothing for an interval gets a
  probe ``SPUBLISH``-ed through the normal publish path to a shard channel in its node's slots;
  if nothing arrives by the next interval the connection is deemed attached to a node that no
  longer receives the traffic, and is replaced (as Centrifugo does, centrifugal/centrifugo#1189).

Leaving is guaranteed as in :class:`~sse_core.hub.SubscriptionHub`: every await of an attach is
:func:`~sse_core.cancellation.checked`, a consumer is forgotten synchronously, and one hub-owned
task (no consumer's cancellation can interrupt it) unsubscribes what nobody wants — also a
channel a message arrives on with nobody attached — and closes idle connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from typing import Any, TypeAlias

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from sse_core.cancellation import checked
from sse_core.cluster import node_for
from sse_core.codec import MalformedEvent, as_text, decode_payload
from sse_core.connection import RedisClient
from sse_core.hub import (
    CONNECTION_ERRORS,
    ChannelRegistry,
    ConnectionState,
    ConnectionStatus,
    PerClientAndLoop,
    Subscription,
    SubscriptionHub,
    reconnect_backoff,
)
from sse_core.mailbox import RESYNC

DEFAULT_PROBE_SECONDS = 5.0
PROBE_PAYLOAD = b"ssewatch-probe"
_PROBE_TAG = "ssewatch:probe:{{{}}}"  # a shard channel per node, in a slot the node owns
_PROBE_SEARCH = 100_000  # tags tried to find one in a node's slots (a handful usually do)

Hub: TypeAlias = "SubscriptionHub | ClusterHub"


def hub_for(client: RedisClient, logger: logging.Logger | None = None) -> Hub:
    """The hub shared by everything using ``client`` on the running loop."""
    if isinstance(client, RedisCluster):
        return ClusterHub.for_client(client, logger)
    return SubscriptionHub.for_client(client, logger)


def connection_status(redis_client: RedisClient) -> ConnectionStatus:
    """State of the pub/sub connection(s) every subscriber on ``redis_client`` shares (for
    status displays and metrics; one server or a cluster); needs the subscribers' event loop."""
    return hub_for(redis_client).status()


class _NodeLink:
    """One node's pub/sub connection: the shard channels it carries and its reader task."""

    def __init__(self, hub: ClusterHub, node: ClusterNode, probe_channel: str) -> None:
        self.hub = hub
        self.node = node
        self.name = node.name
        kwargs = dict(node.connection_kwargs)
        # Bytes and RESP2 whatever the client uses (replies are plain arrays); failures surface
        # at once (the hub remaps instead of retrying one address); reads wait as long as the
        # connection is idle (the liveness probe, not a socket timeout, judges silence).
        kwargs.update(
            decode_responses=False,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            socket_timeout=None,
        )
        self.connection: Connection = node.connection_class(**kwargs)
        self.channels: set[str] = set()
        self.leaving: set[str] = set()  # sunsubscribed by us: the server's reply is expected
        self.pings: deque[asyncio.Future[None] | None] = deque()
        self.probe_channel = probe_channel
        self.received = 0
        self.seen = 0  # ``received`` at the last probe tick
        self.probing = False
        self.reader: asyncio.Task[None] | None = None
        self.lost = False

    async def open(self) -> None:
        await self.connection.connect()  # type: ignore[no-untyped-call]
        if self.probe_channel:
            await self.send("SSUBSCRIBE", self.probe_channel)
        self.reader = asyncio.create_task(self._read(), name=f"ssewatch-cluster-{self.name}")

    async def send(self, *args: Any) -> None:
        try:
            await self.connection.send_command(*args)
        except CONNECTION_ERRORS as exc:
            self.hub._lost(self, f"send failed: {exc}")
            raise

    async def subscribe(self, channels: Iterable[str]) -> None:
        new = [ch for ch in channels if ch not in self.channels]
        self.channels.update(new)
        self.leaving.difference_update(new)
        for ch in new:  # one command per channel: SSUBSCRIBE refuses channels of two slots
            await self.send("SSUBSCRIBE", ch)

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        gone = [ch for ch in channels if ch in self.channels]
        self.channels.difference_update(gone)
        self.leaving.update(gone)
        for ch in gone:
            await self.send("SUNSUBSCRIBE", ch)

    async def confirm(self, waiter: asyncio.Future[None] | None) -> None:
        """``waiter`` completes when the server has processed everything sent before."""
        self.pings.append(waiter)
        await self.send("PING")

    async def close(self) -> None:
        reader, self.reader = self.reader, None
        while reader is not None and reader is not asyncio.current_task() and not reader.done():
            # Again if need be: a cancellation swallowed between two checks is asked for anew.
            reader.cancel()
            await asyncio.wait({reader}, timeout=1)
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self.connection.disconnect()

    async def _read(self) -> None:
        while True:
            try:
                # checked: close() cancels this task, and redis-py may swallow that.
                reply = await checked(self.connection.read_response(timeout=None))
            except CONNECTION_ERRORS as exc:
                self.hub._lost(self, f"connection error: {exc}")
                return
            except RedisError as exc:
                # An error reply (e.g. MOVED for an SSUBSCRIBE racing a topology change) does
                # not say which channel it concerns: move everything this link carried.
                self.hub._lost(self, f"error reply: {exc}")
                return
            except Exception as exc:
                # A reply the client could not parse: the connection's state is unknown, so it
                # is replaced; its subscribers resync from retention.
                self.hub.malformed += 1
                self.hub._lost(self, f"unreadable reply ({exc!r})")
                return
            self.received += 1
            if isinstance(reply, list) and reply:
                self._handle(as_text(reply[0]).lower(), reply)

    def _handle(self, kind: str, reply: list[Any]) -> None:
        if kind == "smessage":
            self.hub._dispatch(self, as_text(reply[1]), reply[2])
        elif kind == "pong":
            if self.pings:
                waiter = self.pings.popleft()
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        elif kind == "sunsubscribe":
            channel = as_text(reply[1])
            if channel in self.leaving:
                self.leaving.discard(channel)
            elif channel in self.channels or channel == self.probe_channel:
                # Sent by the server: the channel's slot no longer lives on this node.
                self.channels.discard(channel)
                self.hub._moved(self, channel)


class ClusterHub(ChannelRegistry):
    _reconcile_task_name = "ssewatch-cluster-reconcile"

    @classmethod
    def for_client(cls, client: RedisCluster, logger: logging.Logger | None = None) -> ClusterHub:
        """The hub shared by everything using ``client`` on the running loop."""
        return _cluster_hubs.get(client, lambda: cls(client, logger))

    def __init__(
        self,
        client: RedisCluster,
        logger: logging.Logger | None = None,
        *,
        probe_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self._client = client
        self._log = logger or logging.getLogger(__name__)
        self.probe_seconds = DEFAULT_PROBE_SECONDS if probe_seconds is None else probe_seconds
        self._links: dict[str, _NodeLink] = {}
        self._link_of: dict[str, _NodeLink] = {}  # channel -> the link carrying it
        self._lock = asyncio.Lock()
        self._orphans: set[str] = set()  # wanted channels whose link was lost or slot moved
        self._stranded: list[asyncio.Future[None]] = []  # attach waiters awaiting a remap
        self._resync: asyncio.Future[None] | None = None
        self._remapping: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._backoff = reconnect_backoff()
        self.probes = 0

    @property
    def nodes(self) -> list[str]:
        """Names (``host:port``) of the nodes this hub holds a connection to."""
        return sorted(self._links)

    def carrier(self, channel: str) -> str | None:
        """The node (``host:port``) whose connection carries ``channel`` now, if any."""
        link = self._link_of.get(channel)
        return link.name if link is not None else None

    # -- attach (detach is the registry's) ------------------------------------------------------

    async def attach(self, sub: Subscription) -> None:
        """Register ``sub`` and return once its channels are live on every node serving them.

        If the calling task is cancelled meanwhile, ``CancelledError`` is raised and ``sub`` is
        detached, even when redis-py swallowed the cancellation (every await is ``checked``).
        """
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[None]] = []
        try:
            async with self._lock:
                if self.state is ConnectionState.IDLE:
                    self.state = ConnectionState.CONNECTING
                new = self._register(sub)
                try:
                    await checked(self._place(new))
                    links = {id(lk): lk for ch in sub.channels if (lk := self._link_of.get(ch))}
                    for link in links.values():
                        waiter = loop.create_future()
                        waiters.append(waiter)
                        await checked(link.confirm(waiter))
                except (*CONNECTION_ERRORS, RedisError) as exc:
                    self._log.info("subscribe deferred until the cluster is reachable (%s)", exc)
                unplaced = [ch for ch in sub.channels if ch not in self._link_of]
                if unplaced:
                    # A remap subscribes them, then releases this waiter.
                    stranded = loop.create_future()
                    self._stranded.append(stranded)
                    waiters.append(stranded)
                    self._orphan(unplaced, "subscribe failed")
                self._start_prober()
                if self.state is ConnectionState.CONNECTING:
                    self.state = ConnectionState.CONNECTED
            await checked(asyncio.gather(*waiters))
        except BaseException:
            await self.detach(sub)
            raise

    async def _reconcile(self) -> None:
        async with self._lock:
            while self._unwanted or (
                not self._by_channel and self.state is not ConnectionState.IDLE
            ):
                if not self._by_channel:
                    self._unwanted.clear()
                    await self._go_idle()
                    continue
                gone = [ch for ch in self._unwanted if ch not in self._by_channel]
                self._unwanted.clear()
                for ch in gone:
                    self._orphans.discard(ch)
                    link = self._link_of.pop(ch, None)
                    if link is not None:
                        # On failure the link is lost: its replacement subscribes only what
                        # is wanted, and a message on an unwanted channel brings it back here.
                        with contextlib.suppress(*CONNECTION_ERRORS):
                            await link.unsubscribe([ch])
                for name, link in list(self._links.items()):
                    if not link.channels:
                        del self._links[name]
                        await link.close()

    async def _place(self, channels: Iterable[str]) -> None:
        """Subscribe ``channels`` on the nodes that own their slots now (lock held)."""
        by_node: dict[str, tuple[ClusterNode, list[str]]] = {}
        for ch in channels:
            node = await node_for(self._client, ch)
            by_node.setdefault(node.name, (node, []))[1].append(ch)
        for node, chs in by_node.values():
            link = await self._link(node)
            for ch in chs:
                self._link_of[ch] = link
                self._orphans.discard(ch)
            await link.subscribe(chs)  # on failure the link orphans them again

    async def _link(self, node: ClusterNode) -> _NodeLink:
        link = self._links.get(node.name)
        if link is not None and not link.lost:
            return link
        if link is not None:
            await link.close()
        link = _NodeLink(self, node, self._probe_channel(node) or "")
        self._links[node.name] = link
        try:
            await link.open()
        except BaseException:
            del self._links[node.name]
            await link.close()
            raise
        return link

    def _probe_channel(self, node: ClusterNode) -> str | None:
        """A shard channel in a slot ``node`` serves now (``None`` if it serves none)."""
        for n in range(_PROBE_SEARCH):
            channel = _PROBE_TAG.format(n)
            if self._client.get_node_from_key(channel) == node:
                return channel
        return None

    async def _go_idle(self) -> None:
        for link in self._links.values():
            await link.close()
        self._links.clear()
        self._link_of.clear()
        self._orphans.clear()
        self._unwanted.clear()
        for task in (self._prober, self._remapping):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._prober = self._remapping = None
        for future in self._stranded:
            future.cancel()
        self._stranded.clear()
        self._end_resync()
        self.state = ConnectionState.IDLE

    # -- topology changes ---------------------------------------------------------------------

    def _lost(self, link: _NodeLink, why: str) -> None:
        """A link's connection failed: everything it carried must move."""
        if self._links.get(link.name) is not link or link.lost:
            return
        link.lost = True
        for waiter in link.pings:
            if waiter is not None and not waiter.done():
                self._stranded.append(waiter)
        link.pings.clear()
        carried = [ch for ch, lk in self._link_of.items() if lk is link]
        for ch in carried:
            del self._link_of[ch]
        link.channels.clear()
        self._orphan(carried, f"{link.name}: {why}")

    def _moved(self, link: _NodeLink, channel: str) -> None:
        """The server dropped ``channel`` from ``link`` (its slot migrated away)."""
        if channel == link.probe_channel:
            link.probe_channel = ""  # renewed by the remap
            self._orphan([], f"{link.name} dropped its probe channel (slot moved)")
            return
        if self._link_of.get(channel) is link:
            del self._link_of[channel]
        self._orphan([channel], f"{link.name} dropped {channel} (slot moved)")

    def _orphan(self, channels: Iterable[str], why: str) -> None:
        """``channels`` lost their subscription: RESYNC their consumers, then remap."""
        self._log.warning("Redis Cluster pub/sub: %s; resubscribing", why)
        self.state = ConnectionState.RECONNECTING
        loop = asyncio.get_running_loop()
        if self._resync is None or self._resync.done():
            self._resync = loop.create_future()
        # RESYNC before anything a new subscription can deliver: each affected consumer waits
        # for resynced(), then replays from the last event it got from each stream.
        fresh = [ch for ch in channels if ch not in self._orphans]
        self._orphans.update(fresh)
        affected = {id(s): s for ch in fresh for s in self._by_channel.get(ch, [])}
        for sub in affected.values():
            sub.mailbox.signal(RESYNC)
        if self._remapping is None or self._remapping.done():
            self._remapping = loop.create_task(self._remap(), name="ssewatch-cluster-remap")

    async def _remap(self) -> None:
        failures = 0
        while True:
            try:
                if await self._remap_once():
                    return
            except (*CONNECTION_ERRORS, RedisError) as exc:
                self._log.warning("Redis Cluster remap failed: %s", exc)
            failures += 1
            await asyncio.sleep(self._backoff.compute(failures))

    async def _remap_once(self) -> bool:
        """Subscribe every orphaned channel where its slot lives now; ``True`` once all are
        confirmed and nothing moved meanwhile."""
        async with self._lock:
            if not self._by_channel:
                return True
            self.reconnects += 1
            # The slot map as the cluster sees it now (where publishers are sent too).
            await self._client.nodes_manager.initialize()
            for name, link in list(self._links.items()):
                if link.lost:
                    del self._links[name]
                    await link.close()
                elif not link.probe_channel:
                    probe = self._probe_channel(self._client.get_node(node_name=name) or link.node)
                    if probe is None and not link.channels:
                        del self._links[name]  # serves nothing we want any more
                        await link.close()
                    elif probe is not None:
                        link.probe_channel = probe
                        await link.send("SSUBSCRIBE", probe)
            wanted = [ch for ch in self._orphans if ch in self._by_channel]
            if not await self._settled(wanted):
                return False
            await self._place(wanted)
            self._orphans.intersection_update(self._by_channel)
            loop = asyncio.get_running_loop()
            confirms: list[asyncio.Future[None]] = []
            for link in self._links.values():
                confirms.append(loop.create_future())
                await link.confirm(confirms[-1])
        await asyncio.wait(confirms, timeout=max(self.probe_seconds, 5.0))
        async with self._lock:
            if self._orphans or not all(c.done() and not c.cancelled() for c in confirms):
                return False
            self.state = ConnectionState.CONNECTED
            for future in self._stranded:
                if not future.done():
                    future.set_result(None)
            self._stranded.clear()
            self._end_resync()
            return True

    async def _settled(self, channels: Iterable[str]) -> bool:
        """Whether every node the slot map names for ``channels`` still calls itself a primary.

        Right after a failover a refreshed map can still name the demoted primary, which accepts
        ``SSUBSCRIBE`` and the confirming ``PING`` as a replica, but misses the messages published
        before its replication link to the new primary is up: subscribers would replay too
        early and lose them. A remap therefore waits (with backoff) until the map is current.
        """
        nodes = {}
        for ch in channels:
            node = self._client.get_node_from_key(ch)
            if node is not None:
                nodes[node.name] = node
        for node in nodes.values():
            role = await self._client.execute_command("ROLE", target_nodes=node)
            if as_text(role[0]) != "master":
                self._log.info("slot map names %s, now a replica; retrying", node.name)
                return False
        return True

    async def resynced(self) -> None:
        """Return once every channel is confirmed live again after the latest topology change."""
        while self._resync is not None and not self._resync.done():
            await asyncio.shield(self._resync)

    def _end_resync(self) -> None:
        if self._resync is not None and not self._resync.done():
            self._resync.set_result(None)

    # -- liveness probe -----------------------------------------------------------------------

    def _start_prober(self) -> None:
        if self.probe_seconds > 0 and (self._prober is None or self._prober.done()):
            self._prober = asyncio.get_running_loop().create_task(
                self._probe_loop(), name="ssewatch-cluster-probe"
            )

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.probe_seconds)
            for link in list(self._links.values()):
                if link.lost or not link.probe_channel:
                    continue
                if link.received != link.seen:
                    link.seen, link.probing = link.received, False
                elif link.probing:
                    self._lost(link, "no message since the liveness probe")
                else:
                    link.probing = True
                    self.probes += 1
                    task = asyncio.get_running_loop().create_task(self._send_probe(link))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)

    async def _send_probe(self, link: _NodeLink) -> None:
        try:
            await self._client.spublish(link.probe_channel, PROBE_PAYLOAD)
        except (*CONNECTION_ERRORS, RedisError):
            link.probing = False  # the publish path is broken: says nothing about this link

    # -- fan-out ------------------------------------------------------------------------------

    def _dispatch(self, link: _NodeLink, channel: str, payload: Any) -> None:
        subs = self._by_channel.get(channel)
        if not subs:
            # Still subscribed on the node, wanted by nobody: unsubscribe it.
            known = channel == link.probe_channel or channel in link.leaving
            if not known and channel not in self._unwanted:
                self._unwanted.add(channel)
                self._link_of[channel] = link
                link.channels.add(channel)  # so the reconciler's SUNSUBSCRIBE is sent
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


_cluster_hubs: PerClientAndLoop[RedisCluster, ClusterHub] = PerClientAndLoop()
