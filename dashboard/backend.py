"""What one dashboard process shares: the Redis client, the settings, and demo traffic.

Every browser session (or notebook view) builds its own cheap ``RedisSSESubscriber`` on the one
client here, so the process holds one connection pool and, through sse_core's hub, one pub/sub
connection however many sessions are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from uuid import UUID

from redis.asyncio.cluster import RedisCluster

from dashboard.demo import DEMO_USERS, DemoTraffic
from dashboard.telemetry import Telemetry
from sse_core import (
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSESettings,
    connect,
    redact_url,
)
from sse_core.connection import RedisClient, is_cluster

log = logging.getLogger(__name__)

DEMO_RATE = 25.0  # events/s on average: lively, still readable in the feed
DEMO_NAMES: dict[UUID, str] = {uuid: name for name, uuid in DEMO_USERS.items()}
USERS_CACHE_SECONDS = 10.0  # one SCAN per process per interval, however many sessions ask
MAX_LISTED_USERS = 500  # the picker lists at most this many; any id can still be typed


def describe_client(client: RedisClient) -> str:
    """A display label for a client someone else created (no credentials)."""
    if isinstance(client, RedisCluster):
        nodes = ", ".join(sorted(client.nodes_manager.startup_nodes))
        return f"Redis Cluster ({nodes})"
    kwargs = client.connection_pool.connection_kwargs
    if "host" not in kwargs:
        return f"{type(client).__name__} (in-process)"
    return redact_url(f"redis://{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}")


@dataclass
class Backend:
    client: RedisClient
    label: str
    settings: SSESettings = field(default_factory=SSESettings)
    demo: bool = False
    owns_client: bool = False
    demo_seed: int | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    _demo_task: asyncio.Task[int] | None = field(default=None, init=False, repr=False)
    _users: list[UUID] = field(default_factory=list, init=False, repr=False)
    _users_at: float | None = field(default=None, init=False, repr=False)
    _users_scan: asyncio.Task[list[UUID]] | None = field(default=None, init=False, repr=False)

    @classmethod
    def create(
        cls,
        redis_url: str | None = None,
        *,
        redis_client: RedisClient | None = None,
        settings: SSESettings | None = None,
        demo: bool | None = None,
    ) -> Backend:
        """Connect as configured; with no URL anywhere, embedded fakeredis with demo traffic.

        ``demo`` defaults to "on" exactly when the embedded Redis is used: an empty dashboard
        would teach a new user nothing, while a real Redis has real producers.
        """
        settings = settings or SSESettings()
        if redis_client is not None:
            return cls(redis_client, describe_client(redis_client), settings, bool(demo))
        url = redis_url if redis_url is not None else settings.redis_url
        demo = url is None if demo is None else demo
        client = connect(url, cluster=settings.redis_cluster)
        label = redact_url(url) + (" (Redis Cluster)" if is_cluster(client) else "")
        return cls(client, label, settings, demo, owns_client=True)

    @property
    def keys(self) -> SSEChannelKeys:
        return self.settings.channel_keys()

    @property
    def user_names(self) -> dict[UUID, str]:
        """Display names of users this process knows by name: the demo's, when it runs."""
        return dict(DEMO_NAMES) if self.demo else {}

    def subscriber(self) -> RedisSSESubscriber:
        return RedisSSESubscriber.from_settings(self.client, self.settings)

    def publisher(self) -> RedisSSEPublisher:
        return RedisSSEPublisher.from_settings(self.client, self.settings)

    async def users(self) -> list[UUID]:
        """Users with retained events, shared by all sessions and refreshed at most every
        :data:`USERS_CACHE_SECONDS` (discovery SCANs the keyspace, which is not free)."""
        fresh = self._users_at is not None and time.monotonic() - self._users_at < (
            USERS_CACHE_SECONDS
        )
        if fresh:
            return list(self._users)
        if self._users_scan is None or self._users_scan.done():
            self._users_scan = asyncio.get_running_loop().create_task(self._scan_users())
        return list(await asyncio.shield(self._users_scan))

    async def _scan_users(self) -> list[UUID]:
        found = await self.subscriber().retained_users()
        self._users, self._users_at = found[:MAX_LISTED_USERS], time.monotonic()
        return self._users

    def start_demo(self) -> None:
        """Start demo traffic on the running loop (idempotent; no-op unless ``demo``)."""
        if not self.demo or self._demo_task is not None:
            return
        traffic = DemoTraffic(self.publisher(), rate=DEMO_RATE, seed=self.demo_seed)
        self._demo_task = asyncio.get_running_loop().create_task(
            traffic.run(), name="ssewatch-demo-traffic"
        )
        self._demo_task.add_done_callback(_log_failure)
        log.info("demo traffic started (%.0f events/s on average)", DEMO_RATE)

    @property
    def demo_running(self) -> bool:
        return self._demo_task is not None and not self._demo_task.done()

    async def aclose(self) -> None:
        task, self._demo_task = self._demo_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.owns_client:
            await self.client.aclose()


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("demo traffic stopped", exc_info=task.exception())
