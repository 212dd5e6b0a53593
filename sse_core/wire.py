"""The ``text/event-stream`` wire format (WHATWG HTML, "Server-sent events").

Pure functions: nothing here knows about Redis or HTTP. A field value can never inject a line:
``id`` and ``event`` values containing CR, LF or NUL are rejected, and ``data`` is split on every
line terminator the spec's parser recognises (CRLF, CR, LF) into one ``data:`` line each.
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FORBIDDEN_IN_FIELD = re.compile(r"[\r\n\x00]")


def _check_field(name: str, value: str) -> str:
    if _FORBIDDEN_IN_FIELD.search(value):
        raise ValueError(f"SSE {name} must not contain CR, LF or NUL: {value[:80]!r}")
    return value


def format_event(
    data: str,
    *,
    event: str | None = None,
    event_id: str | None = None,
    retry_ms: int | None = None,
) -> str:
    """One SSE message: ``id``, ``event``, ``retry``, then ``data`` lines and a blank line."""
    lines: list[str] = []
    if event_id is not None:
        lines.append(f"id: {_check_field('id', event_id)}")
    if event is not None:
        lines.append(f"event: {_check_field('event', event)}")
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return "\n".join(lines) + "\n\n"


def format_retry(retry_ms: int) -> str:
    """A message that only sets the client's reconnection delay."""
    if retry_ms < 0:
        raise ValueError(f"retry must be a non-negative number of milliseconds, got {retry_ms}")
    return f"retry: {int(retry_ms)}\n\n"


def format_comment(text: str = "") -> str:
    """A comment line (``: text``); clients ignore it, proxies see traffic (heartbeats)."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)) + "\n"
