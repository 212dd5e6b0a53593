"""Creating the Redis client: a real server from a URL, or an embedded in-process one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.connection import (
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)

EMBEDDED_URL = "embedded://"


def connect(url: str | None = None, *, decode_responses: bool = False) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url``; ``None`` gives an in-process fakeredis.

    The embedded default lets the dashboard, demo and notebooks run with no server at all;
    everything in ssewatch works the same on it, only nothing outlives the process.
    """
    if url is None or url == EMBEDDED_URL:
        from fakeredis import FakeAsyncRedis

        return FakeAsyncRedis(decode_responses=decode_responses)
    return Redis.from_url(url, decode_responses=decode_responses)


def undecoded_sibling(client: Redis) -> Redis | None:
    """A new client on ``client``'s server whose replies are bytes; ``None`` if its already are.

    ssewatch decodes what it reads itself (:mod:`sse_core.codec`: a message that is not UTF-8 is
    malformed, skipped and counted). A client built with ``decode_responses=True`` instead raises
    ``UnicodeDecodeError`` on one such stored message before any of our code sees it (in replay,
    every resume). The caller closes the sibling (``aclose``).
    """
    pool = client.connection_pool
    if not pool.connection_kwargs.get("decode_responses"):
        return None
    return Redis(connection_pool=_like(pool, decode_responses=False))


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
