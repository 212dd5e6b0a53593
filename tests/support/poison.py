"""Poison as a careless producer writes it: stream entries and pub/sub messages that cannot
become a valid, wire-encodable event (issue #9 item 4). Shared by the one-server and the
cluster tests."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from sse_core import RedisSSEPublisher, SSEChannelKeys, SSEEvent
from sse_core.connection import RedisClient

KEYS = SSEChannelKeys()

# The data field of a stream entry, exactly as the producer wrote it.
POISON_DATA: dict[str, str] = {
    "5000-digit integer": "1" * 5000,
    "5000-digit integer in a payload": '{"n": ' + "7" * 5000 + "}",
    "5000-deep nesting": "[" * 5000 + "]" * 5000,
    "5000-deep nesting in a payload": '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
    "lone surrogate": '{"s": "\\ud800"}',
    "lone surrogate key": '{"\\udfff": 1}',
}


def good_event(user: UUID, **data: Any) -> SSEEvent:
    return SSEEvent(event_type="ai.response.chunk", user_id=user, data=data)


def raw_entry(user: UUID, data: str) -> dict[str, str]:
    """Every field valid but ``data``, as another producer would write it."""
    template = good_event(user)
    return {
        "event_id": str(SSEEvent(event_type="ai.response.chunk", user_id=user).event_id),
        "event_type": "ai.response.chunk",
        "data": data,
        "occurred_at": template.occurred_at.isoformat(),
        "user_id": str(user),
    }


def raw_payload(user: UUID, data: str) -> str:
    """The pub/sub form of :func:`raw_entry` (the data spliced in as raw JSON text)."""
    entry = raw_entry(user, "DATA")
    envelope = json.dumps({**entry, "data": None})
    return envelope.replace('"data": null', f'"data": {data}')


async def poisoned_stream(
    redis: RedisClient, publisher: RedisSSEPublisher, user: UUID
) -> tuple[SSEEvent, list[SSEEvent]]:
    """``first``, then every poison entry interleaved with good events; returns the good ones."""
    first = good_event(user, i=0)
    await publisher.publish(first)
    good: list[SSEEvent] = []
    for n, data in enumerate(POISON_DATA.values(), start=1):
        await redis.xadd(KEYS.user_stream(user), raw_entry(user, data))  # type: ignore[arg-type]
        event = good_event(user, i=n)
        await publisher.publish(event)
        good.append(event)
    return first, good
