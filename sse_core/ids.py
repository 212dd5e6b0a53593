"""UUIDv7 event ids (RFC 9562) and parsing of user-supplied ids.

An event id carries its creation time in its first 48 bits, which is what lets replay seek
straight to a position in a retention stream instead of scanning it.
"""

from __future__ import annotations

import os
import threading
import time
from uuid import UUID

_lock = threading.Lock()
_last_ms = 0
_last_counter = 0
_COUNTER_MAX = 0xFFF


def epoch_ms() -> int:
    """Wall-clock milliseconds since the epoch: the unit of UUIDv7 ids and stream ids."""
    return time.time_ns() // 1_000_000


def uuid7(now_ms: int | None = None) -> UUID:
    """A new UUIDv7, strictly increasing within this process.

    The 12-bit ``rand_a`` field is a counter within one millisecond (RFC 9562 method 1), so ids
    made in the same millisecond still sort in creation order; if it overflows, the timestamp is
    advanced by one millisecond rather than breaking monotonicity. An explicit ``now_ms`` makes
    an id for that time, outside the process-wide sequence (for back-filling and tests).
    """
    global _last_ms, _last_counter
    if now_ms is not None:
        return _compose(now_ms, int.from_bytes(os.urandom(2)) & 0x3FF)
    with _lock:
        ms = epoch_ms()
        if ms <= _last_ms:
            ms = _last_ms
            counter = _last_counter + 1
            if counter > _COUNTER_MAX:
                ms += 1
                counter = int.from_bytes(os.urandom(2)) & 0x3FF
        else:
            counter = int.from_bytes(os.urandom(2)) & 0x3FF
        _last_ms, _last_counter = ms, counter
    return _compose(ms, counter)


def _compose(ms: int, counter: int) -> UUID:
    rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    return UUID(int=value)


def require_uuid7(value: UUID) -> UUID:
    """``value`` if it is a UUIDv7: the one rule for event ids, at construction and on resume."""
    if value.version != 7:
        raise ValueError(
            f"invalid event id {str(value)!r}: ssewatch event ids are UUIDv7 "
            f"(this one is version {value.version}); leave event_id out to get one"
        )
    return value


def uuid7_time_ms(value: UUID) -> int:
    """Milliseconds since the epoch encoded in a UUIDv7; ``ValueError`` for other versions."""
    return require_uuid7(value).int >> 80


def parse_uuid(value: UUID | str, what: str) -> UUID:
    """Parse a user-supplied UUID, naming the field and the expected form when it is wrong."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value).strip())
    except ValueError:
        raise ValueError(
            f"invalid {what} {str(value)[:80]!r}: expected a UUID such as "
            "'0192f0c1-7c4e-7d3a-9b1e-2f6a8c0d4e51'"
        ) from None


def parse_event_id(value: UUID | str) -> UUID:
    """Parse a ``Last-Event-ID``: it must be a UUIDv7, because replay seeks by its time."""
    return require_uuid7(parse_uuid(value, "event id"))


def parse_user_id(value: UUID | str) -> UUID:
    """Parse a user id (any UUID version)."""
    return parse_uuid(value, "user id")
