"""Events as pandas DataFrames: the one definition of "events as a table".

The notebooks and the dashboard's replay table both use :func:`events_to_frame`, so a column
means the same everywhere: fixed columns with proper dtypes, then the ``data`` payload flattened
into ``data.<key>`` columns (nested keys joined with dots; the prefix keeps payload keys from ever
colliding with the fixed columns).

Loading is async (:func:`load_events`) because it shares the ``redis.asyncio`` client with
everything else: ``await`` it in Jupyter. Scripts use :func:`load_events_sync`, which owns its
client, because a ``redis.asyncio`` client is bound to the event loop it first ran in: calling
``asyncio.run(load_events(client))`` twice with one client fails on the second call and leaks
the first loop's connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pandas as pd

from sse_core.categories import SSEEventCategory, validate_categories
from sse_core.connection import RedisClient, connect
from sse_core.events import SSEEvent
from sse_core.ids import parse_event_id, parse_user_id, uuid7_time_ms
from sse_core.keys import SSEChannelKeys
from sse_core.registry import SSEEventType
from sse_core.replay import Replay
from sse_core.retention import RetentionReader
from sse_core.settings import SSESettings

EVENT_COLUMNS: tuple[str, ...] = ("event_id", "occurred_at", "category", "event_type", "user_id")
CATEGORY_DTYPE = pd.CategoricalDtype([c.value for c in SSEEventCategory])
EVENT_TYPE_DTYPE = pd.CategoricalDtype([t.value for t in SSEEventType])
COLUMN_DTYPES: dict[str, Any] = {
    "event_id": "string",
    "occurred_at": "datetime64[ns, UTC]",
    "category": CATEGORY_DTYPE,
    "event_type": EVENT_TYPE_DTYPE,
    "user_id": "string",
}
DATA_PREFIX = "data."
COMPLETE_ATTR = "complete"
BROADCASTS_ATTR = "includes_broadcasts"
"""``frame.attrs`` key set by :func:`load_events`: ``False`` if retention already dropped some of
the requested history (trimmed by size or age, or reset), so the frame is not all of it."""

_CONCURRENT_READS = 16  # users read at once: bounded so thousands of users never mean
# thousands of connections from the pool


def _flatten(payload: dict[str, Any], prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts become dotted names; if two spellings meet (``{"a": {"b"}}`` and ``"a.b"``)
    the later key in the payload wins. Empty dicts and lists are kept as values."""
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _flatten(value, f"{name}.", out)
        else:
            out[name] = value
    return out


def events_to_frame(events: Iterable[SSEEvent]) -> pd.DataFrame:
    """One row per event, in the given order; an empty input gives the fixed columns only.

    Fixed columns have fixed dtypes (see :data:`COLUMN_DTYPES`; the categoricals list every known
    category and type, so counts include zeros and frames concatenate cleanly). Payload columns
    follow the order keys are first seen and pandas' own inference, except that whole numbers
    and booleans missing from some rows stay what they are, as pandas' nullable ``Int64`` and
    ``boolean`` (pandas alone would turn ``4737`` into ``4737.0``, in the table and in CSV).
    """
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
    columns = _columns(rows)
    frame = pd.DataFrame.from_records(rows, columns=columns)
    return frame.astype({**COLUMN_DTYPES, **_nullable_dtypes(rows, columns[len(EVENT_COLUMNS) :])})


_INT64 = range(-(2**63), 2**63)


def _nullable_dtypes(rows: list[dict[str, Any]], columns: Iterable[str]) -> dict[str, str]:
    """``Int64``/``boolean`` for payload columns of ints/bools that some rows lack (or null).

    Decided from the payloads' own values: once in a frame, an int column with a gap is
    already float, and a float column of whole numbers (``10.0``) must stay float.
    """
    dtypes: dict[str, str] = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        present = [v for v in values if v is not None]
        if not present or len(present) == len(values):
            continue  # nothing missing: pandas' own int64 / bool inference stands
        if all(type(v) is bool for v in present):
            dtypes[column] = "boolean"
        elif all(type(v) is int and v in _INT64 for v in present):
            dtypes[column] = "Int64"
    return dtypes


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    data_columns = dict.fromkeys(k for row in rows for k in row if k.startswith(DATA_PREFIX))
    return [*EVENT_COLUMNS, *data_columns]


async def load_events(
    redis_client: RedisClient,
    user_id: UUID | str | None = None,
    *,
    since: datetime | UUID | str | None = None,
    categories: Iterable[str] | None = None,
    keys: SSEChannelKeys | None = None,
) -> pd.DataFrame:
    """Retained history as a DataFrame: one user (with broadcasts) or, by default, everyone.

    ``since`` is a time (events from then on; naive means UTC) or an event id (events after it),
    given as a ``datetime``/``Timestamp``, a ``UUID`` or a string of either. Rows are in
    publication order, each broadcast once. ``frame.attrs["complete"]`` says whether retention
    still held everything asked for (``attrs["includes_broadcasts"]``: whether the key layout
    retains broadcasts at all). ``keys`` defaults to the configured layout (``SSE_KEY_LAYOUT``,
    ``SSE_KEY_PREFIX``). Works with top-level ``await`` in Jupyter; scripts use
    :func:`load_events_sync`.
    """
    reader = RetentionReader(redis_client, keys or SSESettings().channel_keys())
    allowed = frozenset(validate_categories(categories))
    start = _parse_since(since)
    if user_id is not None:
        replay = await _read_user(reader, parse_user_id(user_id), start, allowed, exact=True)
        return _framed(replay.events, replay.complete, reader.layout.retains_broadcasts)
    # With no user stream left, reading the nil user still yields the broadcast stream.
    users = await reader.users() or [UUID(int=0)]
    replays: list[Replay] = []
    for first in range(0, len(users), _CONCURRENT_READS):
        chunk = users[first : first + _CONCURRENT_READS]
        replays += await asyncio.gather(
            *(_read_user(reader, u, start, allowed, exact=False) for u in chunk)
        )
    merged = heapq.merge(*(r.events for r in replays), key=lambda e: (e.time_ms, e.event_id.int))
    unique = {e.event_id: e for e in merged}  # a broadcast is in every user's history: once
    complete = all(r.complete for r in replays)
    return _framed(unique.values(), complete, reader.layout.retains_broadcasts)


def load_events_sync(
    redis_url: str,
    user_id: UUID | str | None = None,
    *,
    since: datetime | UUID | str | None = None,
    categories: Iterable[str] | None = None,
    keys: SSEChannelKeys | None = None,
) -> pd.DataFrame:
    """:func:`load_events` for scripts: connects to ``redis_url``, loads, closes.

    Not for use where an event loop is already running (Jupyter): ``await load_events`` there.
    """

    async def run() -> pd.DataFrame:
        client = connect(redis_url)
        try:
            return await load_events(client, user_id, since=since, categories=categories, keys=keys)
        finally:
            await client.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    raise RuntimeError(
        "load_events_sync() cannot run inside an event loop (e.g. Jupyter): "
        "use `await load_events(client, ...)` instead"
    )


async def _read_user(
    reader: RetentionReader,
    user_id: UUID,
    start: datetime | UUID | None,
    allowed: frozenset[SSEEventCategory],
    *,
    exact: bool,
) -> Replay:
    """One user's history from ``start``.

    After an event id, ``exact`` finds the id's position in this user's streams (the seed's
    replay semantics). Across users the id is only a point in time: every other user's stream
    lacks it, so each is read from its millisecond and cut after it in (time, id) order.
    """
    if start is None:
        return await reader.since(user_id, 0, allowed)
    if isinstance(start, datetime):
        return await reader.since(user_id, int(start.timestamp() * 1000), allowed)
    if exact:
        return await reader.replay(user_id, start, allowed)
    start_ms = uuid7_time_ms(start)
    replay = await reader.since(user_id, start_ms, allowed)
    cut = (start_ms, start.int)
    kept = [e for e in replay.events if (e.time_ms, e.event_id.int) > cut]
    return dataclasses.replace(replay, events=kept)


def _framed(events: Iterable[SSEEvent], complete: bool, broadcasts: bool) -> pd.DataFrame:
    frame = events_to_frame(events)
    frame.attrs[COMPLETE_ATTR] = complete
    frame.attrs[BROADCASTS_ATTR] = broadcasts
    return frame


def _parse_since(since: datetime | UUID | str | None) -> datetime | UUID | None:
    if since is None:
        return None
    if isinstance(since, UUID):
        return parse_event_id(since)
    if isinstance(since, datetime):
        return _as_utc(since)
    try:
        event_id = UUID(since.strip())
    except ValueError:
        pass
    else:
        return parse_event_id(event_id)  # a UUID of another version is told ids are v7
    try:
        return _as_utc(datetime.fromisoformat(since))
    except ValueError:
        raise ValueError(
            f"invalid since {since[:80]!r}: give a datetime, an ISO 8601 time or an event id "
            "(UUIDv7)"
        ) from None


def _as_utc(moment: datetime) -> datetime:
    """A naive time is UTC, as for :class:`~sse_core.events.SSEEvent` (not the local zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
