"""Events as pandas DataFrames: the one definition of "events as a table".

The notebooks and the dashboard's replay table both use :func:`events_to_frame`, so a column
means the same everywhere: fixed columns with proper dtypes, then the ``data`` payload flattened
into ``data.<key>`` columns (nested keys joined with dots; the prefix keeps payload keys from ever
colliding with the fixed columns).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import pandas as pd
from redis.asyncio import Redis

from sse_core.categories import SSEEventCategory, validate_categories
from sse_core.events import SSEEvent
from sse_core.keys import SSEChannelKeys
from sse_core.registry import SSEEventType
from sse_core.retention import RetentionReader

EVENT_COLUMNS: tuple[str, ...] = ("event_id", "occurred_at", "category", "event_type", "user_id")
CATEGORY_DTYPE = pd.CategoricalDtype([c.value for c in SSEEventCategory])
EVENT_TYPE_DTYPE = pd.CategoricalDtype([t.value for t in SSEEventType])
DATA_PREFIX = "data."


def _flatten(payload: dict[str, Any], prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _flatten(value, f"{name}.", out)
        else:
            out[name] = value
    return out


def events_to_frame(events: Iterable[SSEEvent]) -> pd.DataFrame:
    """One row per event, in the given order; an empty input gives the fixed columns only."""
    rows = [
        _flatten(
            e.data,
            DATA_PREFIX,
            {
                "event_id": str(e.event_id),
                "occurred_at": e.occurred_at,
                "category": e.category.value,
                "event_type": e.event_type.value,
                "user_id": str(e.user_id),
            },
        )
        for e in events
    ]
    frame = pd.DataFrame.from_records(rows, columns=_columns(rows))
    return frame.astype(
        {
            "event_id": "string",
            "occurred_at": "datetime64[ns, UTC]",
            "category": CATEGORY_DTYPE,
            "event_type": EVENT_TYPE_DTYPE,
            "user_id": "string",
        }
    )


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    data_columns = dict.fromkeys(k for row in rows for k in row if k.startswith(DATA_PREFIX))
    return [*EVENT_COLUMNS, *data_columns]


async def load_events(
    redis_client: Redis,
    user_id: UUID | str | None = None,
    *,
    since: datetime | UUID | str | None = None,
    categories: list[str] | None = None,
    keys: SSEChannelKeys | None = None,
) -> pd.DataFrame:
    """Retained history as a DataFrame: one user (with broadcasts) or, by default, everyone.

    ``since`` is a time (events from then on) or an event id (events after it). Works with
    top-level ``await`` in Jupyter; from a script use ``asyncio.run(load_events(...))``.
    """
    reader = RetentionReader(redis_client, keys or SSEChannelKeys())
    allowed = frozenset(validate_categories(categories))
    start = _parse_since(since)
    users = [UUID(str(user_id))] if user_id is not None else await reader.users()
    histories = await asyncio.gather(*(reader.history(u, start, allowed) for u in users))
    seen: dict[UUID, SSEEvent] = {}
    for history in histories:
        for event in history:
            seen.setdefault(event.event_id, event)
    ordered = sorted(seen.values(), key=lambda e: (e.time_ms, e.event_id.int))
    return events_to_frame(ordered)


def _parse_since(since: datetime | UUID | str | None) -> datetime | UUID | None:
    if since is None or isinstance(since, datetime | UUID):
        return since
    try:
        return UUID(since)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(since)
    except ValueError:
        raise ValueError(
            f"invalid since {since!r}: give a datetime, an ISO 8601 time or an event id"
        ) from None
