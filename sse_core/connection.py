"""Creating the Redis client: a server or a cluster from a URL, or an embedded in-process one."""

from __future__ import annotations

import inspect
import logging
from typing import Any, TypeAlias, overload
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import (
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import RedisError

from sse_core.settings import ClusterMode, SSESettings

EMBEDDED_URL = "embedded://"
DETECT_TIMEOUT_SECONDS = 2.0

RedisClient: TypeAlias = Redis | RedisCluster
"""What every sse_core constructor accepts: one server, or a Redis Cluster."""

log = logging.getLogger(__name__)


def connect(
    url: str | None = None,
    *,
    decode_responses: bool = False,
    cluster: ClusterMode | None = None,
) -> RedisClient:
    """A client for ``url``; ``None`` gives an in-process fakeredis.

    A cluster node (``INFO cluster`` says ``cluster_enabled:1``) gives a ``RedisCluster``;
    ``cluster`` (default: ``SSE_REDIS_CLUSTER``, ``auto``) set to ``yes`` or ``no`` skips the
    probe. The embedded default lets the dashboard, demo and notebooks run with no server at
    all; everything in ssewatch works the same on it, only nothing outlives the process.
    """
    if url is None or url == EMBEDDED_URL:
        from fakeredis import FakeAsyncRedis

        return FakeAsyncRedis(decode_responses=decode_responses)
    mode = cluster if cluster is not None else SSESettings().redis_cluster
    if mode == "yes" or (mode == "auto" and is_cluster_node(url)):
        return RedisCluster.from_url(url, decode_responses=decode_responses)
    return Redis.from_url(url, decode_responses=decode_responses)


@overload
def undecoded_sibling(client: Redis) -> Redis | None: ...
@overload
def undecoded_sibling(client: RedisCluster) -> RedisCluster | None: ...
def undecoded_sibling(client: RedisClient) -> RedisClient | None:
    """A new client on ``client``'s server (or cluster) whose replies are bytes; ``None`` if its
    already are.

    ssewatch decodes what it reads itself (:mod:`sse_core.codec`: a message that is not UTF-8 is
    malformed, skipped and counted). A client built with ``decode_responses=True`` instead raises
    ``UnicodeDecodeError`` on one such stored message before any of our code sees it (in replay,
    every resume). The caller closes the sibling (``aclose``).
    """
    if isinstance(client, RedisCluster):
        return _undecoded_cluster(client)
    pool = client.connection_pool
    if not pool.connection_kwargs.get("decode_responses"):
        return None
    return Redis.from_pool(_like(pool, decode_responses=False))  # owns (and closes) the pool


def _undecoded_cluster(client: RedisCluster) -> RedisCluster | None:
    """The cluster variant: the same nodes and connection settings, replies as bytes."""
    current = client.nodes_manager.connection_kwargs
    if not current.get("decode_responses"):
        return None
    accepted = inspect.signature(RedisCluster.__init__).parameters
    kwargs = {k: v for k, v in current.items() if k in accepted and k not in _POOL_OWNED}
    kwargs["decode_responses"] = False
    kwargs["ssl"] = current.get("connection_class") is SSLConnection
    known = client.get_nodes() or list(client.nodes_manager.startup_nodes.values())
    nodes = [ClusterNode(node.host, node.port) for node in known]
    return RedisCluster(startup_nodes=nodes, **kwargs)


def is_cluster_node(url: str) -> bool:
    """Whether the server at ``url`` runs in cluster mode (one short blocking ``INFO``).

    An unreachable server is taken for a standalone one (it may come up later; the client
    reconnects): set ``SSE_REDIS_CLUSTER=yes`` for a cluster that may be down at start.
    """
    probe = redis.Redis.from_url(
        url,
        socket_connect_timeout=DETECT_TIMEOUT_SECONDS,
        socket_timeout=DETECT_TIMEOUT_SECONDS,
    )
    try:
        return int(probe.info("cluster").get("cluster_enabled", 0)) == 1
    except (RedisError, OSError) as exc:
        log.warning("could not ask %s whether it is a cluster node (%s)", redact_url(url), exc)
        return False
    finally:
        probe.close()


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


def redact_url(url: str | None) -> str:
    """The URL without credentials, for display (status bars, logs)."""
    if url is None or url == EMBEDDED_URL:
        return "embedded (in-process fakeredis)"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# redis-py's own connection classes, whose keyword arguments we know how to copy.
_PLAIN_CONNECTIONS = (Connection, SSLConnection, UnixDomainSocketConnection)
# Per-pool state that must not be shared with a second pool.
_POOL_OWNED = ("maint_notifications_pool_handler", "maint_notifications_config")


def _like(pool: ConnectionPool, **changes: Any) -> ConnectionPool:
    kwargs: dict[str, Any] = dict(pool.connection_kwargs)
    for name in _POOL_OWNED:
        kwargs.pop(name, None)
    kwargs.update(changes)
    return ConnectionPool(connection_class=pool.connection_class, **kwargs)


def pubsub_pool(pool: ConnectionPool) -> ConnectionPool | None:
    """A one-connection pool like ``pool`` for the shared pub/sub reader, or ``None`` to use
    ``pool`` itself.

    Two differences, each only where it applies:

    - bytes replies: one message that is not UTF-8 on a ``decode_responses=True`` client would
      raise inside redis-py and stop live delivery for everyone; the codec decodes (and skips
      and counts what is not text) instead;
    - RESP2 on redis-py's own connection classes: redis-py 8 negotiates RESP3, where every
      pub/sub message is a push taking an extra handler path (which also formats a debug string
      per message); RESP2 messages are plain replies, read ~1.2-1.6x faster (bench/README.md).
      fakeredis and Sentinel connections keep their protocol.
    """
    changes: dict[str, Any] = {}
    if pool.connection_kwargs.get("decode_responses"):
        changes["decode_responses"] = False
    if pool.connection_class in _PLAIN_CONNECTIONS and pool.connection_kwargs.get("protocol") in (
        None,
        3,
        "3",
    ):
        changes["protocol"] = 2
    if not changes:
        return None
    return _like(pool, max_connections=1, **changes)
