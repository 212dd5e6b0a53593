"""The event itself: an immutable, validated value with a safe SSE wire form."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import pydantic_core
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from sse_core.categories import SSEEventCategory
from sse_core.ids import uuid7
from sse_core.registry import EVENT_REGISTRY, SSEEventType
from sse_core.wire import format_event


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Uuid7Only:
    """``event_id``'s check (:func:`~sse_core.ids.require_uuid7`'s rule), made in pydantic-core.

    A Python validator on the field cost ~1 us per event decoded in replay. The error still
    says what is valid; the refused id is in its ``input_value``.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.custom_error_schema(
            core_schema.uuid_schema(version=7),
            custom_error_type="uuid7",
            custom_error_message=(
                "invalid event id: ssewatch event ids are UUIDv7; leave event_id out to get one"
            ),
        )


_PYDANTIC_TZINFO = pydantic_core.TzInfo


def _as_utc(value: datetime) -> datetime:
    tzinfo = value.tzinfo
    if tzinfo is UTC:  # the default: nothing to do
        return value
    if tzinfo is None:
        return value.replace(tzinfo=UTC)
    # A decoded time carries pydantic's own fixed-offset tzinfo (``TzInfo(0)``, which equals
    # UTC, is named "UTC" and serializes as "Z"): keep it. Converting it anyway cost 0.6-1 us
    # of the 4-7 us each replayed or received event takes to decode. Only that class: another
    # tzinfo at offset 0 on the day (Europe/London in winter) is not UTC and is converted.
    if tzinfo.__class__ is _PYDANTIC_TZINFO and not tzinfo.utcoffset(None):
        return value
    return value.astimezone(UTC)


# What the seed's ``SSEEvent.from_dict`` requires: a missing one is a ``KeyError`` there.
REQUIRED_FIELDS: tuple[str, ...] = ("event_id", "event_type", "user_id", "data", "occurred_at")


def seed_json(value: Any) -> str:
    """``json.dumps(value)``, byte for byte what the seed application sends and stores.

    Values ``json`` cannot encode (a ``datetime`` in ``data``) are first made JSON-safe the way
    the rest of ssewatch encodes them, instead of failing the publish or the stream.
    """
    try:
        return json.dumps(value)
    except TypeError:
        return json.dumps(pydantic_core.to_jsonable_python(value))


class SSEEvent(BaseModel):
    """One event for one user (or, when broadcast, for all of them).

    ``event_id`` defaults to a fresh UUIDv7, so ids sort by creation time; ``occurred_at`` is
    always timezone-aware UTC (a naive datetime is taken to be UTC already).

    Only UUIDv7 ids are accepted (``ValueError`` otherwise), here and when decoding what is
    stored in Redis: a browser resumes with ``Last-Event-ID`` and replay seeks by the time the
    id carries, so an id of another version could be delivered but never resumed from.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: Annotated[UUID, _Uuid7Only()] = Field(default_factory=uuid7)
    event_type: SSEEventType
    user_id: UUID
    data: dict[str, Any] = Field(default_factory=dict)
    occurred_at: Annotated[datetime, AfterValidator(_as_utc)] = Field(default_factory=_utc_now)

    def __setattr__(self, name: str, value: Any) -> None:
        # Callers written for the seed's frozen dataclass catch AttributeError, not pydantic's
        # ValidationError.
        raise FrozenInstanceError(f"cannot assign to field {name!r}: SSEEvent is immutable")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: SSEEvent is immutable")

    @property
    def category(self) -> SSEEventCategory:
        return EVENT_REGISTRY[self.event_type].category

    @property
    def time_ms(self) -> int:
        """Publication-order time: the milliseconds in the UUIDv7 id."""
        return self.event_id.int >> 80

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: ids and type as strings, time as ISO 8601, plus the category."""
        payload = self.model_dump(mode="json")
        payload["category"] = self.category.value
        return payload

    def to_json(self) -> str:
        """The :meth:`to_dict` form as compact JSON (the SSE ``data`` and the pub/sub payload)."""
        return self.model_dump_json()

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> SSEEvent:
        """Inverse of :meth:`to_dict`, with the seed's errors.

        A missing field raises ``KeyError`` (naming it); an unknown type or a bad value raises
        ``ValueError``.
        """
        for name in REQUIRED_FIELDS:
            if name not in payload:
                raise KeyError(name)
        return cls.model_validate(payload)

    def to_sse_format(self, *, envelope: bool = False) -> str:
        """``id:`` (event id), ``event:`` (type), ``data:`` and a blank line, injection-safe.

        ``data`` is the payload only, ``json.dumps(event.data)``, as the seed sends it: browser
        clients ``JSON.parse(e.data)`` and read the id from ``lastEventId``. ``envelope=True``
        sends the whole event (:meth:`to_json`) instead, for clients that want the user and time.
        """
        data = self.to_json() if envelope else seed_json(self.data)
        return format_event(data, event=self.event_type.value, event_id=str(self.event_id))


def matches_categories(event: SSEEvent, allowed: frozenset[SSEEventCategory]) -> bool:
    """The one category filter: an empty set means "no filter"."""
    return not allowed or event.category in allowed
