"""Coalescing concurrent Redis calls into pipelined round trips, per client and event loop.

Applications publish from many request handlers at once on one shared client. Sending each
call on its own costs a connection and a round trip apiece (and redis-py's async pool refuses
the 101st concurrent connection). Instead, like ioredis' auto-pipelining: a call goes out at
once when its *lane* is idle (a lone call pays one round trip and no added delay, no timers);
while a lane's round trip is in flight, calls that arrive queue up and leave together as one
pipeline when it returns.

- A lane is one connection with at most one pipeline in flight; a call's lane is chosen by its
  first key, so calls for one key (one user's stream) run in the order they were made.
  :data:`LANES` lanes per client bound the connections the batcher holds.
- The pipeline is run by a writer task the batcher owns, never by a caller: cancelling a caller
  cannot interrupt a round trip. A call cancelled before its batch is sent is not sent.
- Each call gets its own outcome: its reply, or the exception for it alone (a script error in
  one call does not fail the others); a connection failure fails exactly the calls of that
  round trip.
- Script calls are ``EVALSHA``; calls answered ``NOSCRIPT`` (a restarted or flushed server) are
  re-sent once after ``SCRIPT LOAD``, and only those: calls that ran must not run twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:  # connection -> settings -> layouts -> batcher: a type only, no import cycle
    from sse_core.connection import RedisClient

LANES = 4  # connections a batcher may hold at once: a small, fixed number
MAX_BATCH = 512  # calls per pipeline: bounds a round trip's size and the wait behind it


class LuaScript:
    """A script known by its SHA1, so calls can be pipelined as ``EVALSHA``."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class Call:
    """One call: ``EVALSHA`` of ``script`` with ``keys`` and ``args``, or, without a script,
    the plain command ``args`` (its first key, for the lane, is ``keys[0]``)."""

    __slots__ = ("args", "future", "keys", "script")

    def __init__(self, script: LuaScript | None, keys: Sequence[Any], args: Sequence[Any]) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.future: asyncio.Future[Any] | None = None


class _Lane:
    __slots__ = ("busy", "queue")

    def __init__(self) -> None:
        self.queue: deque[Call] = deque()
        self.busy = False


class RedisBatcher:
    """The batcher shared by every publisher on one client and event loop (:meth:`for_client`)."""

    # Whether a lone call may run in its caller's task: only where a cancelled round trip is
    # known to leave its connection clean (:meth:`_round_trip` drops it).
    sends_inline = True

    _batchers: weakref.WeakKeyDictionary[
        RedisClient, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisBatcher]
    ] = weakref.WeakKeyDictionary()

    @classmethod
    def for_client(cls, redis_client: RedisClient) -> RedisBatcher:
        loop = asyncio.get_running_loop()
        per_loop = cls._batchers.setdefault(redis_client, weakref.WeakKeyDictionary())
        batcher = per_loop.get(loop)
        if batcher is None:
            batcher = per_loop[loop] = cls(redis_client)
        return batcher

    def __init__(self, redis_client: RedisClient, lanes: int = LANES) -> None:
        self._redis = redis_client
        self._lanes = [_Lane() for _ in range(lanes)]
        self._writers: set[asyncio.Task[None]] = set()
        self.round_trips = 0

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """Each call's reply, or the exception it failed with (returned, not raised)."""
        futures = [self.submit(call) for call in calls]
        results: list[Any] = []
        try:
            for future in futures:
                try:
                    results.append(await future)
                except Exception as exc:
                    results.append(exc)
        except asyncio.CancelledError:
            for future in futures:  # calls not yet sent are then not sent
                future.cancel()
            raise
        return results

    async def run_one(self, call: Call) -> Any:
        """One call's reply, or the exception it failed with (returned, not raised).

        On an idle lane the call goes out from the caller's own task, as a direct call would:
        no writer task to start and hand over to, so a lone publish costs what one round trip
        costs. Calls arriving meanwhile queue behind it and leave together when it is done.
        """
        lane = self._lane(call)
        if lane.busy or not self.sends_inline:
            future = self.submit(call)
        else:
            lane.busy = True
            future = call.future = asyncio.get_running_loop().create_future()
            try:
                await self._send([call])
            finally:
                lane.busy = False
                if lane.queue:
                    self._start_writer(lane)
        try:
            return await future
        except Exception as exc:
            return exc

    def submit(self, call: Call) -> asyncio.Future[Any]:
        """Queue ``call``; its future resolves with the reply or fails with its exception."""
        call.future = asyncio.get_running_loop().create_future()
        lane = self._lane(call)
        lane.queue.append(call)
        if not lane.busy:
            self._start_writer(lane)
        return call.future

    def _lane(self, call: Call) -> _Lane:
        return self._lanes[hash(call.keys[0]) % len(self._lanes)] if call.keys else self._lanes[0]

    def _start_writer(self, lane: _Lane) -> None:
        lane.busy = True
        writer = asyncio.get_running_loop().create_task(
            self._drain(lane), name="ssewatch-batch-writer"
        )
        self._writers.add(writer)  # the loop holds tasks weakly
        writer.add_done_callback(self._writers.discard)

    async def _drain(self, lane: _Lane) -> None:
        """Send what the lane has queued, batch after batch, until it is empty."""
        batch: list[Call] = []
        try:
            while lane.queue:
                batch = []
                while lane.queue and len(batch) < MAX_BATCH:
                    call = lane.queue.popleft()
                    if call.future is not None and not call.future.done():  # not cancelled
                        batch.append(call)
                if batch:
                    await self._send(batch)
                batch = []
        except BaseException as exc:  # the loop is shutting down: nobody is left unanswered
            for call in [*batch, *lane.queue]:
                if isinstance(exc, Exception):
                    _settle(call, exc)
                elif call.future is not None:
                    call.future.cancel()
            lane.queue.clear()
            raise
        finally:
            lane.busy = False

    async def _send(self, batch: list[Call]) -> None:
        results = await self._round_trip(batch)
        retry = [c for c, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)]
        for call, result in zip(batch, results, strict=True):
            if not isinstance(result, NoScriptError):
                _settle(call, result)
        if not retry:
            return
        scripts = {c.script.sha: c.script for c in retry if c.script is not None}
        try:
            for script in scripts.values():
                await self._redis.script_load(script.source)
        except Exception as exc:
            for call in retry:
                _settle(call, exc)
            return
        for call, result in zip(retry, await self._round_trip(retry), strict=True):
            _settle(call, result)

    async def _round_trip(self, calls: list[Call]) -> list[Any]:
        """Send ``calls`` as one pipeline on a pooled connection; each call's reply or error.

        redis-py's own pipeline would wrap every reply in its own timeout and may re-send a
        whole pipeline after a connection error (running its calls twice); here one timeout
        covers the batch and nothing is re-sent. If the connection fails, the calls whose
        replies were read keep them and the rest fail with the error.
        """
        self.round_trips += 1
        redis_client = self._redis
        assert isinstance(redis_client, Redis)  # a cluster's batcher sends per node (cluster.py)
        pool = redis_client.connection_pool
        results: list[Any] = []
        try:
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        except Exception as exc:
            return [exc] * len(calls)
        try:
            commands = [
                ("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)
                if c.script is not None
                else c.args
                for c in calls
            ]
            await conn.send_packed_command(pack_commands(commands), check_health=False)
            async with asyncio.timeout(conn.socket_timeout):
                for _ in calls:
                    try:
                        results.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:
                        results.append(exc)
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                exc = RedisTimeoutError(f"no reply within {conn.socket_timeout}s")
            await conn.disconnect(nowait=True)  # replies may still be on their way
            results += [exc] * (len(calls) - len(results))
        except BaseException:  # a caller sending its own call was cancelled mid round trip
            await conn.disconnect(nowait=True)  # its reply must not reach the next user
            raise
        finally:
            await pool.release(conn)
        return results


def pack_commands(commands: Iterable[Sequence[Any]]) -> bytes:
    """Commands as RESP arrays of bulk strings, exactly what redis-py's ``pack_commands`` sends.

    redis-py's pure-Python packer costs ~90 us for one publish script call (~1/3 of the
    publisher's CPU in a burst); this does the same in a few us. Arguments are what the layouts
    build: ``bytes``, ``str`` (UTF-8) and ``int``; anything else is refused, as redis-py does.
    """
    out: list[bytes] = []
    append = out.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for arg in command:
            kind = type(arg)  # exact types first: the isinstance chain costs ~1/3 of a call
            if kind is bytes:
                append(b"$%d\r\n%b\r\n" % (len(arg), arg))
            elif kind is str:
                data = arg.encode()
                append(b"$%d\r\n%b\r\n" % (len(data), data))
            elif kind is int:
                data = b"%d" % arg
                append(b"$%d\r\n%b\r\n" % (len(data), data))
            else:
                data = _encode_other(arg)
                append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def _encode_other(arg: Any) -> bytes:
    """The rarer arguments (subclasses such as a ``str`` enum, floats), as redis-py packs them."""
    if isinstance(arg, bytes):
        return bytes(arg)
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int) and not isinstance(arg, bool):
        return b"%d" % arg
    if isinstance(arg, float):
        return repr(arg).encode()
    raise DataError(f"invalid argument for Redis: {type(arg).__name__}")


def _settle(call: Call, result: Any) -> None:
    future = call.future
    if future is None or future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
