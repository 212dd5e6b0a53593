"""The event itself: an immutable, validated value with a safe SSE wire form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sse_core.categories import SSEEventCategory
from sse_core.ids import uuid7
from sse_core.registry import EVENT_REGISTRY, SSEEventType
from sse_core.wire import format_event


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SSEEvent(BaseModel):
    """One event for one user (or, when broadcast, for all of them).

    ``event_id`` defaults to a fresh UUIDv7, so ids sort by creation time; ``occurred_at`` is
    always timezone-aware UTC (a naive datetime is taken to be UTC already).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID = Field(default_factory=uuid7)
    event_type: SSEEventType
    user_id: UUID
    data: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime = Field(default_factory=_utc_now)

    @field_validator("occurred_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def category(self) -> SSEEventCategory:
        return EVENT_REGISTRY[self.event_type].category

    @property
    def time_ms(self) -> int:
        """Publication-order time: the UUIDv7 time, or ``occurred_at`` for foreign id versions."""
        if self.event_id.version == 7:
            return self.event_id.int >> 80
        return int(self.occurred_at.timestamp() * 1000)

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
        """Inverse of :meth:`to_dict`; an unknown type or bad value raises ``ValueError``."""
        return cls.model_validate(payload)

    def to_sse_format(self) -> str:
        """``id:``, ``event:`` and ``data:`` lines and a blank line, safe against injection."""
        return format_event(
            self.to_json(), event=self.event_type.value, event_id=str(self.event_id)
        )


def matches_categories(event: SSEEvent, allowed: frozenset[SSEEventCategory]) -> bool:
    """The one category filter: an empty set means "no filter"."""
    return not allowed or event.category in allowed
