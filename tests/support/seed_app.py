"""What the seed application (Dashtam) writes to Redis, done with raw commands.

A stand-in for its ``RedisSSEPublisher`` and ``JWTService`` (faiyaz7283/dashtam-api,
``src/infrastructure/sse/redis_publisher.py``, ``src/infrastructure/security/jwt_service.py``),
written from their observable behaviour and deliberately *not* with sse_core: the tests check
that ssewatch reads this exactly, so nothing here may share ssewatch's encoders.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import jwt
from redis.asyncio import Redis

PREFIX = "sse"


@dataclass
class SeedEvent:
    """The seed's SSEEvent fields: what its ``to_dict`` holds."""

    event_type: str
    user_id: UUID
    data: dict[str, Any]
    event_id: UUID = field(default_factory=lambda: uuid7_like(time.time_ns() // 1_000_000))
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "user_id": str(self.user_id),
            "data": self.data,
            "occurred_at": self.occurred_at.isoformat(),
        }


def uuid7_like(ms: int) -> UUID:
    """A UUIDv7 for ``ms`` from random bits (the seed uses ``uuid_extensions.uuid7``)."""
    rand = uuid.uuid4().int
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand & 0xFFF) << 64 | 0b10 << 62
    return UUID(int=value | (rand >> 12) & (2**62 - 1))


class SeedPublisher:
    """The seed's publish path: PUBLISH, then (with retention) XADD, then EXPIRE once."""

    def __init__(
        self, redis: Redis, *, retention: bool = True, max_len: int = 1000, ttl: int = 3600
    ) -> None:
        self.redis = redis
        self.retention = retention
        self.max_len = max_len
        self.ttl = ttl

    async def publish(self, event: SeedEvent) -> None:
        await self.redis.execute_command(
            "PUBLISH", f"{PREFIX}:user:{event.user_id}", json.dumps(event.to_dict())
        )
        if not self.retention:
            return
        key = f"{PREFIX}:stream:user:{event.user_id}"
        await self.redis.execute_command(
            "XADD",
            key,
            "MAXLEN",
            "~",
            self.max_len,
            "*",
            "event_id",
            str(event.event_id),
            "event_type",
            event.event_type,
            "data",
            json.dumps(event.data),
            "occurred_at",
            event.occurred_at.isoformat(),
        )
        if await self.redis.execute_command("TTL", key) == -1:
            await self.redis.execute_command("EXPIRE", key, self.ttl)

    async def broadcast(self, event: SeedEvent) -> None:
        await self.redis.execute_command(
            "PUBLISH", f"{PREFIX}:broadcast", json.dumps(event.to_dict())
        )


def access_token(secret: str, user_id: UUID, *, minutes: int = 15) -> str:
    """An access token as the seed's ``JWTService.generate_access_token`` makes it."""
    now = datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "email": "user@example.com",
        "roles": ["user"],
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + minutes * 60,
        "jti": str(uuid7_like(int(now.timestamp() * 1000))),
        "session_id": str(uuid.uuid4()),
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def raw_entries(rows: list[Any]) -> list[dict[str, str]]:
    """``XRANGE`` rows as plain field dicts (either client mode)."""

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return [{text(k): text(v) for k, v in fields.items()} for _, fields in rows]
