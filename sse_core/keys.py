"""Every Redis key and channel name, built in one place.

A user's channel and stream share the hash tag ``{u:<uuid>}``, so in Redis Cluster they live in
one slot and the publish script (which touches both) stays single-slot.
"""

from __future__ import annotations

from uuid import UUID


class SSEChannelKeys:
    """Names under one prefix (``sse`` unless configured)."""

    def __init__(self, prefix: str = "sse") -> None:
        if not prefix or any(ch in prefix for ch in "{}*? "):
            raise ValueError(f"invalid key prefix {prefix!r}: use letters, digits, ':' or '_'")
        self.prefix = prefix
        self._user_head = f"{prefix}:{{u:"
        self._user_channel_tail = "}:events"

    def user_channel(self, user_id: UUID) -> str:
        return f"{self.prefix}:{{u:{user_id}}}:events"

    def user_stream(self, user_id: UUID) -> str:
        return f"{self.prefix}:{{u:{user_id}}}:stream"

    def broadcast_channel(self) -> str:
        return f"{self.prefix}:{{broadcast}}:events"

    def broadcast_stream(self) -> str:
        return f"{self.prefix}:{{broadcast}}:stream"

    def user_stream_pattern(self) -> str:
        """``SCAN MATCH`` pattern for every user's stream (user discovery)."""
        return f"{self.prefix}:{{u:*}}:stream"

    def is_broadcast_channel(self, channel: str) -> bool:
        return channel == self.broadcast_channel()

    def parse_user_id_from_channel(self, channel: str) -> UUID | None:
        """The user a channel belongs to, or ``None`` for the broadcast or a foreign channel."""
        return self._parse_user_id(channel, self._user_channel_tail)

    def parse_user_id_from_stream(self, key: str) -> UUID | None:
        return self._parse_user_id(key, "}:stream")

    def _parse_user_id(self, name: str, tail: str) -> UUID | None:
        head = self._user_head
        if not (name.startswith(head) and name.endswith(tail)):
            return None
        try:
            return UUID(name[len(head) : -len(tail)])
        except ValueError:
            return None
