"""The one way tests wait: poll a probe until its value is accepted, with a deadline.

Never a blind sleep: on a busy 2-core CI machine anything timed is late, so a test waits for the
state it needs and fails with the last value it saw.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    accept: Callable[[T], Any] = bool,
    what: str = "condition",
    within: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Return the first value of ``probe()`` (sync or async) that ``accept`` takes; fail after
    ``within`` seconds, naming ``what`` and the last value."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if accept(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; last: {value!r}")
        await asyncio.sleep(interval)
