"""Every Redis key and channel name, built in one place.

Two naming schemes, one class each:

- :class:`SSEChannelKeys` (ssewatch's own): a user's channel and stream share the hash tag
  ``{u:<uuid>}``, so in Redis Cluster they live in one slot and the publish script (which
  touches both) stays single-slot.
- :class:`DashtamChannelKeys`: the seed application's names (``sse:user:<uuid>``,
  ``sse:broadcast``, ``sse:stream:user:<uuid>``), for watching a deployment of it unchanged.

The seed calls these methods on the class (``SSEChannelKeys.user_channel(user_id)``); that
works here too and uses the class's default instance (prefix ``sse``). An instance with another
prefix answers the same calls with its own names.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, Self, TypeVar, cast
from uuid import UUID

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_PREFIX = "sse"


class class_or_instance(Generic[P, R]):  # lower case: a decorator, like classmethod
    """A method that also works called on the class, with the class's default instance."""

    def __init__(self, func: Callable[Concatenate[Any, P], R]) -> None:
        self._func = func
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def __get__(self, obj: SSEChannelKeys | None, owner: type[SSEChannelKeys]) -> Callable[P, R]:
        target = obj if obj is not None else owner.default()
        # A string type: cast(Callable[P, R], ...) would build the generic alias on every call,
        # and this runs twice per published event.
        return cast("Callable[P, R]", MethodType(self._func, target))


class SSEChannelKeys:
    """Names under one prefix (``sse`` unless configured), hash-tagged per user.

    Subclasses change only the templates: ``<prefix>`` and ``<user>`` are filled in.
    """

    USER_CHANNEL: ClassVar[str] = "<prefix>:{u:<user>}:events"
    USER_STREAM: ClassVar[str] = "<prefix>:{u:<user>}:stream"
    BROADCAST_CHANNEL: ClassVar[str] = "<prefix>:{broadcast}:events"
    BROADCAST_STREAM: ClassVar[str] = "<prefix>:{broadcast}:stream"

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or any(ch in prefix for ch in "{}*?[] <>"):
            raise ValueError(f"invalid key prefix {prefix!r}: use letters, digits, ':' or '_'")
        self.prefix = prefix
        self._channel_head, self._channel_tail = self._split(self.USER_CHANNEL)
        self._stream_head, self._stream_tail = self._split(self.USER_STREAM)
        self._broadcast_channel = self.BROADCAST_CHANNEL.replace("<prefix>", prefix)
        self._broadcast_stream = self.BROADCAST_STREAM.replace("<prefix>", prefix)

    def _split(self, template: str) -> tuple[str, str]:
        head, tail = template.replace("<prefix>", self.prefix).split("<user>")
        return head, tail

    @classmethod
    def default(cls) -> Self:
        """The instance behind class-level calls (default prefix), one per class."""
        found = cls.__dict__.get("_default_instance")
        if found is None:
            found = cls()
            cls._default_instance = found  # type: ignore[attr-defined]
        return cast(Self, found)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prefix!r})"

    @class_or_instance
    def user_channel(self, user_id: UUID) -> str:
        return f"{self._channel_head}{user_id}{self._channel_tail}"

    @class_or_instance
    def user_stream(self, user_id: UUID) -> str:
        return f"{self._stream_head}{user_id}{self._stream_tail}"

    @class_or_instance
    def broadcast_channel(self) -> str:
        return str(self._broadcast_channel)

    @class_or_instance
    def broadcast_stream(self) -> str:
        return str(self._broadcast_stream)

    @class_or_instance
    def user_stream_pattern(self) -> str:
        """``SCAN MATCH`` pattern for every user's stream (user discovery)."""
        return f"{_glob_escape(self._stream_head)}*{_glob_escape(self._stream_tail)}"

    @class_or_instance
    def is_broadcast_channel(self, channel: str) -> bool:
        return channel == self._broadcast_channel

    @class_or_instance
    def parse_user_id_from_channel(self, channel: str) -> UUID | None:
        """The user a channel belongs to, or ``None`` for the broadcast or a foreign channel."""
        return _parse_between(channel, self._channel_head, self._channel_tail)

    @class_or_instance
    def parse_user_id_from_stream(self, key: str) -> UUID | None:
        return _parse_between(key, self._stream_head, self._stream_tail)


class DashtamChannelKeys(SSEChannelKeys):
    """The seed application's names. Not hash-tagged: Redis Cluster would scatter them.

    ``BROADCAST_STREAM`` is a name the seed never writes (it does not retain broadcasts); it
    exists so both classes answer the same calls.
    """

    USER_CHANNEL = "<prefix>:user:<user>"
    USER_STREAM = "<prefix>:stream:user:<user>"
    BROADCAST_CHANNEL = "<prefix>:broadcast"
    BROADCAST_STREAM = "<prefix>:stream:broadcast"


def _glob_escape(text: str) -> str:
    return "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in text)


def _parse_between(name: str, head: str, tail: str) -> UUID | None:
    if not (name.startswith(head) and name.endswith(tail)) or len(name) <= len(head) + len(tail):
        return None
    try:
        return UUID(name[len(head) : len(name) - len(tail)])
    except ValueError:
        return None
