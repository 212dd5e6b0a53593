"""Cancellation that survives a client library which swallows it.

On Python 3.11, ``asyncio.wait_for`` returns the result instead of raising when the task is
cancelled in the same loop iteration as the awaited operation completes (fixed in 3.12).
redis-py 8.1 sends every command through ``wait_for`` (its default socket timeout is 5 s), so
``PubSub.subscribe()`` / ``ping()`` and pipeline calls can return normally to a task that was
just cancelled: a disconnected SSE client's stream then subscribed anyway and waited forever.

The task's own request count (``Task.cancelling()``, 3.11+) does not lie: a cancel request that
was delivered and then swallowed still counts. :func:`checked` compares it around one await.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def _requests() -> tuple[asyncio.Task[object] | None, int]:
    task = asyncio.current_task()
    return task, (task.cancelling() if task is not None else 0)


async def checked(awaitable: Awaitable[T]) -> T:
    """``await awaitable``, but raise ``CancelledError`` if this task was cancelled meanwhile.

    Whatever the awaited code did with the cancellation (raised it, swallowed it and returned,
    or turned it into another error), the caller sees ``CancelledError``.
    """
    task, before = _requests()
    try:
        result = await awaitable
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        if task is not None and task.cancelling() > before:
            raise asyncio.CancelledError("cancelled (the awaited call hid it)") from exc
        raise
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError("cancelled (the awaited call swallowed it)")
    return result
