"""How an event is stored in Redis: a JSON pub/sub payload and named stream-entry fields.

Stream entries keep each field separately (``event_id``, ``event_type``, ``data`` as JSON,
``occurred_at``, ``user_id``) so they read well in ``redis-cli XRANGE``.

One rule decides what may travel, on both ends: an event is carried only if it is UTF-8 JSON
that pydantic-core's parser accepts (at most 201 levels deep, integers of at most 4,300
characters, no lone surrogates) and it can be encoded for the wire. The publisher refuses
anything else (:func:`encode_event`); readers skip and count anything else they find in Redis
(live and replay alike), so one poison entry can never break a replay or a stream. Both failures
raise :class:`MalformedEvent`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core

from sse_core.events import SSEEvent

RedisValue = bytes | str


def as_text(value: RedisValue) -> str:
    """A name Redis returned (key, channel, id) as text, whichever way the client decodes."""
    return value.decode() if isinstance(value, bytes) else value


class MalformedEvent(ValueError):
    """A message or stream entry that is not a valid event, or an event that cannot be stored."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, pydantic_core.ValidationError):
        return str(exc.errors()[0]["msg"])
    return str(exc)[:200] or type(exc).__name__


def _parse_json(text: RedisValue) -> Any:
    """The one JSON parser of the codec (pydantic-core's, in Rust, ~3x ``json.loads``).

    No fallback to ``json``: what it refuses (lone surrogate escapes, more than 201 levels,
    integers beyond 4,300 characters, sign included) is exactly what could not be encoded again
    or would break Python's own ``int``/``json`` limits downstream, so it is malformed.
    """
    return pydantic_core.from_json(text)


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event in both stored forms: the pub/sub payload and the stream field values."""

    event: SSEEvent
    payload: bytes
    field_values: list[bytes]


STREAM_FIELDS: tuple[str, ...] = ("event_id", "event_type", "data", "occurred_at", "user_id")


def encode_event(event: SSEEvent) -> EncodedEvent:
    """Both stored forms of ``event``, or :class:`MalformedEvent` if readers would refuse it.

    The payload is parsed back once (a Rust parse, ~1 us for a typical event): what a reader
    cannot decode must never be published, or it would be skipped by every subscriber.
    """
    try:
        payload = pydantic_core.to_json(event)
        parsed = _parse_json(payload)
        data = pydantic_core.to_json(event.data)
    except (ValueError, RecursionError) as exc:  # PydanticSerializationError is a ValueError
        raise MalformedEvent(f"event {event.event_id} cannot be stored: {_reason(exc)}") from None
    values = [
        # The parse back already made the ids' and the time's text (as in the payload).
        parsed["event_id"].encode(),
        event.event_type.value.encode(),
        data,
        parsed["occurred_at"].encode(),
        parsed["user_id"].encode(),
    ]
    return EncodedEvent(event, payload, values)


def encode_payload(event: SSEEvent) -> bytes:
    """The pub/sub message body (:class:`MalformedEvent` if it cannot be stored)."""
    return encode_event(event).payload


def encode_field_values(event: SSEEvent) -> list[bytes]:
    """Stream entry values in :data:`STREAM_FIELDS` order (the publish script adds the names)."""
    return encode_event(event).field_values


def encode_fields(event: SSEEvent) -> list[bytes]:
    """Stream entry fields as a flat name/value list (the order ``XADD`` takes them in)."""
    values = encode_field_values(event)
    return [
        part
        for name, value in zip(STREAM_FIELDS, values, strict=True)
        for part in (name.encode(), value)
    ]


def decode_payload(payload: RedisValue) -> SSEEvent:
    """One pub/sub message as an event; anything else is :class:`MalformedEvent`."""
    try:
        return SSEEvent.model_validate_json(payload)
    except (ValueError, RecursionError) as exc:  # ValidationError is a ValueError
        raise MalformedEvent(f"malformed event payload: {_reason(exc)}") from None


# Field name -> model field, for names as Redis returns them (bytes, or str when decoding).
_FIELD_NAMES: dict[Any, str] = {
    **{name: name for name in STREAM_FIELDS},
    **{name.encode(): name for name in STREAM_FIELDS},
}
# The names of an entry encode_event wrote, in its order, as a raw reply lists them.
_WRITTEN_NAMES = [name.encode() for name in STREAM_FIELDS]


_ID_FIELDS = ("event_id", "user_id")

StreamFields = Mapping[Any, RedisValue] | Sequence[RedisValue]
"""One entry's fields: a mapping (redis-py's ``XRANGE``) or the raw flat name/value list."""


def _record(fields: StreamFields) -> dict[str, Any]:
    if isinstance(fields, list | tuple):  # not Mapping: an ABC check costs ~1 us per entry
        names = fields[0::2]
        if names == _WRITTEN_NAMES:  # the usual entry: ~0.6 us, not ~3 for the loop below
            event_id, event_type, data, occurred_at, user_id = fields[1::2]  # STREAM_FIELDS
            return {
                "event_id": event_id,
                "event_type": event_type,
                "data": data,
                "occurred_at": occurred_at,
                "user_id": user_id,
            }
        pairs: Iterable[tuple[Any, RedisValue]] = zip(names, fields[1::2], strict=False)
    elif isinstance(fields, Mapping):
        pairs = fields.items()
    else:
        raise ValueError(f"not a stream entry's fields: {type(fields).__name__}")
    record: dict[str, Any] = {}
    for key, value in pairs:
        name = _FIELD_NAMES.get(key)
        if name is not None:
            record[name] = value
    return record


def decode_fields(fields: StreamFields) -> SSEEvent:
    """Inverse of :func:`encode_fields` for one ``XRANGE`` entry.

    Values go to the model as Redis returned them: pydantic-core reads ids, type and time
    from bytes itself, which saves decoding each one in Python (~1 us of ~3.3 per entry).
    Fields the model does not know are ignored, as the model ignores extra fields.
    """
    try:
        record = _record(fields)
        for name in _ID_FIELDS:
            # pydantic reads 16 bytes as a raw UUID; what encode_event writes is 36 characters.
            if len(record.get(name) or "") == 16:
                raise ValueError(f"{name} is not a UUID string")
        record["data"] = _parse_json(record.get("data", "{}"))
        # The model's validator itself: model_validate's Python wrapper adds ~0.3-0.5 us per entry.
        event: SSEEvent = SSEEvent.__pydantic_validator__.validate_python(record)
        return event
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent(f"malformed stream entry: {_reason(exc)}") from None
