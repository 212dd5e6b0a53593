"""Creating the Redis client: a real server from a URL, or an embedded in-process one."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import ConnectionPool, Redis

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
    ``UnicodeDecodeError`` on one such stored message before any of our code sees it: in the
    shared pub/sub reader that stopped live delivery for everyone, in replay every resume. The
    caller closes the sibling (``aclose``).
    """
    pool = client.connection_pool
    if not pool.connection_kwargs.get("decode_responses"):
        return None
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs))


def redact_url(url: str | None) -> str:
    """The URL without credentials, for display (status bars, logs)."""
    if url is None or url == EMBEDDED_URL:
        return "embedded (in-process fakeredis)"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
