"""Property-based hostile input: whatever lands in Redis, valid events flow, poison is counted.

Hypothesis writes arbitrary bytes, JSON of every shape, huge numbers, deep nesting, invalid
UTF-8 and lone surrogates into pub/sub messages and stream entries of a real redis-server, while
a subscriber, ``GET /events`` (live, and a resume over HTTP) and ``replay()`` run. Checked: no
crash, every valid event delivered exactly once and in order everywhere, every malformed
message or entry counted. The hostile values are malformed by construction (each generator says
why), so the oracle never asks the code under test what is valid.

Bounded: 50 examples per codec property, 15 scenarios on Redis; no example database
(``database=None``: no state from earlier runs), no deadline (the machine is shared).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from sse_core import (
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSEEvent,
    SSEEventType,
    SSESettings,
    uuid7,
)
from sse_core.codec import (
    STREAM_FIELDS,
    MalformedEvent,
    decode_fields,
    decode_payload,
    encode_event,
)
from sse_core.http import STREAM_RESET, TokenSigner
from sse_core.http.tornado import event_routes
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.sse_http import hub_subscriptions, new_secret, tornado_server

KEYS = SSEChannelKeys()
TYPES = [t.value for t in SSEEventType]

# -- JSON of every shape -----------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**4299) + 1, max_value=10**4300 - 1)  # to 4,300 characters
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)  # any code point but lone surrogates: CR, LF, NUL, U+2028, emoji
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
payloads = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


def _nest(depth: int, inner: str = "0") -> str:
    return "[" * depth + inner + "]" * depth


# -- poison, malformed by construction -----------------------------------------------------------
# Each strategy gives the raw text (or bytes) of a stream entry's ``data`` field; the envelope
# for pub/sub is built around it. The reason in each name is why no reader may accept it.

bad_data: dict[str, st.SearchStrategy[bytes]] = {
    "integer over 4,300 characters": st.integers(4301, 6000).map(
        lambda n: b'{"n": ' + b"7" * n + b"}"
    )
    | st.integers(4300, 6000).map(lambda n: b'{"n": -' + b"7" * n + b"}"),
    "nesting over 201 levels": st.integers(202, 6000).map(
        lambda d: ('{"a": ' + _nest(d - 1) + "}").encode()
    ),
    "lone surrogate escape": st.sampled_from([0xD800, 0xDBFF, 0xDC00, 0xDFFF]).map(
        lambda cp: ('{"s": "\\u' + f"{cp:04x}" + '"}').encode()
    ),
    "invalid UTF-8": st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc"]).map(
        lambda bad: b'{"s": "' + bad + b'"}'
    ),
    "not an object": json_values.filter(lambda v: not isinstance(v, dict)).map(
        lambda v: json.dumps(v).encode()
    ),
    "not JSON": st.sampled_from([b"{", b"{'a': 1}", b"", b"[1,]", b'{"a" 1}', b"\x00"]),
}


def _fields(user: UUID, data: bytes, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": str(uuid7()),
        "event_type": "ai.response.chunk",
        "data": data,
        "occurred_at": "2026-01-01T00:00:00+00:00",
        "user_id": str(user),
    }
    fields.update(overrides)
    return fields


def _envelope(fields: dict[str, Any]) -> bytes:
    """The pub/sub form of stream fields: a JSON object with ``data`` spliced in raw."""
    head = {k: v for k, v in fields.items() if k != "data"}
    text = json.dumps(head).encode()
    if "data" not in fields:
        return text
    return text[:-1] + b', "data": ' + fields["data"] + b"}"


@dataclass(frozen=True)
class Poison:
    """One hostile write: where it goes and its raw form for that place."""

    why: str
    to_stream: bool
    to_channel: bool
    fields: dict[str, Any]  # for the stream
    payload: bytes  # for the channel


@st.composite
def poisons(draw: st.DrawFn, user: UUID) -> Poison:
    place = draw(st.sampled_from(["stream", "channel", "both"]))
    shape = draw(st.sampled_from([*bad_data, "foreign id", "unknown type", "bad user", "bytes"]))
    if shape == "bytes":
        # Arbitrary bytes: too short to be an event envelope or an entry with a UUID.
        raw = draw(st.binary(max_size=30))
        fields = {draw(st.binary(min_size=1, max_size=8)): raw}
        return Poison(shape, place != "channel", place != "stream", fields, raw)
    if shape in bad_data:
        fields = _fields(user, draw(bad_data[shape]))
    elif shape == "foreign id":
        fields = _fields(user, b"{}", event_id=str(uuid4()))
    elif shape == "unknown type":
        fields = _fields(user, b"{}", event_type=draw(st.text(max_size=20).filter(_not_a_type)))
    else:
        fields = _fields(user, b"{}", user_id=draw(st.text(max_size=20)))
    return Poison(shape, place != "channel", place != "stream", fields, _envelope(fields))


def _not_a_type(text: str) -> bool:
    return text not in TYPES


# -- the codec alone: one rule on both ends (no Redis) ------------------------------------------

HYPOTHESIS = settings(
    database=None,
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@HYPOTHESIS
@given(data=payloads, event_type=st.sampled_from(TYPES))
def test_what_the_publisher_stores_every_reader_decodes_identically(
    data: dict[str, Any], event_type: str
) -> None:
    event = SSEEvent(event_type=event_type, user_id=uuid4(), data=data)
    encoded = encode_event(event)
    fields = dict(zip(STREAM_FIELDS, encoded.field_values, strict=True))
    assert decode_payload(encoded.payload) == event
    assert decode_fields(fields) == event
    event.to_sse_format()  # and it goes on the wire


@HYPOTHESIS
@given(st.data())
def test_every_poison_is_malformed_on_both_paths(data: st.DataObject) -> None:
    poison = data.draw(poisons(uuid4()))
    with pytest.raises(MalformedEvent):
        decode_fields(poison.fields)
    with pytest.raises(MalformedEvent):
        decode_payload(poison.payload)


@HYPOTHESIS
@given(
    data=st.dictionaries(
        st.text(max_size=4), st.sampled_from(["\ud800", "\udfff", "a\udc80b"]), min_size=1
    )
    | st.integers(202, 400).map(lambda d: {"a": json.loads(_nest(d - 1))})
    | st.integers(4301, 5000).map(lambda n: {"n": 10**n - 1})  # n digits
)
def test_the_publisher_refuses_what_readers_would_refuse(data: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent):
        encode_event(SSEEvent(event_type="ai.response.chunk", user_id=uuid4(), data=data))


# -- on the real redis-server, with every reader running -----------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[UUID, list[SSEEvent | Poison]]:
    user = uuid4()
    valid = st.builds(
        lambda d, t: SSEEvent(event_type=t, user_id=user, data=d), payloads, st.sampled_from(TYPES)
    )
    ops = draw(st.lists(valid | poisons(user), min_size=1, max_size=12))
    return user, ops


async def _read_sse(
    source: Any, into: list[str], until: Callable[[], bool], resets: list[ServerSentEvent]
) -> None:
    async for sse in source.aiter_sse():
        if sse.event == STREAM_RESET:
            resets.append(sse)
        elif sse.data:
            into.append(sse.id)
        if until():
            return


async def _run(url: str, decode: bool, user: UUID, ops: list[SSEEvent | Poison]) -> None:
    redis = Redis.from_url(url, decode_responses=decode)
    raw = Redis.from_url(url)
    secret = new_secret()
    token = TokenSigner(secret).mint(user, 300)
    publisher = RedisSSEPublisher(redis, enable_retention=True, raise_errors=True)
    live_sub = RedisSSESubscriber(redis, enable_retention=True)
    replayer = RedisSSESubscriber(redis, enable_retention=True)
    routes = event_routes(redis, SSESettings(token_secret=secret, heartbeat_seconds=30))
    endpoint = routes[0][2]["endpoint"]
    anchor = SSEEvent(event_type="ai.response.chunk", user_id=user, data={"anchor": True})
    sentinel = SSEEvent(event_type="ai.response.chunk", user_id=user, data={"sentinel": True})
    valid = [op for op in ops if isinstance(op, SSEEvent)]
    expected = [*valid, sentinel]
    live: list[SSEEvent] = []
    http_live: list[str] = []
    resets: list[ServerSentEvent] = []
    replays: list[list[SSEEvent]] = []

    async def consume() -> None:
        stream = live_sub.subscribe(user)
        try:
            async for event in stream:
                live.append(event)
                if event == sentinel:
                    return
        finally:
            await stream.aclose()

    async def replay_while_writing(done: asyncio.Event) -> None:
        while not done.is_set():
            replays.append((await replayer.replay(user, anchor.event_id)).events)
            await asyncio.sleep(0)

    try:
        await publisher.publish(anchor)
        async with (
            tornado_server(routes) as base,
            httpx.AsyncClient(timeout=20) as client,
            aconnect_sse(client, "GET", f"{base}/events?token={token}") as http,
        ):
            consumer = asyncio.ensure_future(consume())
            http_reader = asyncio.ensure_future(
                _read_sse(http, http_live, lambda: str(sentinel.event_id) in http_live, resets)
            )
            await eventually(lambda: hub_subscriptions(redis) == 2, what="both subscribed")
            done = asyncio.Event()
            replaying = asyncio.ensure_future(replay_while_writing(done))
            for op in ops:
                if isinstance(op, SSEEvent):
                    await publisher.publish(op)
                    continue
                if op.to_stream:
                    await raw.xadd(KEYS.user_stream(user), op.fields)
                if op.to_channel:
                    await raw.publish(KEYS.user_channel(user), op.payload)
            await publisher.publish(sentinel)
            done.set()
            await asyncio.wait_for(asyncio.gather(consumer, http_reader, replaying), 20)
            # A browser resuming from the anchor over HTTP gets the same, without a reset.
            resumed: list[str] = []
            headers = {"Last-Event-ID": str(anchor.event_id)}
            async with aconnect_sse(
                client, "GET", f"{base}/events?token={token}", headers=headers
            ) as again:
                await asyncio.wait_for(
                    _read_sse(again, resumed, lambda: len(resumed) == len(expected), resets), 20
                )
        final = RedisSSESubscriber(redis, enable_retention=True)
        replay = await final.replay(user, anchor.event_id)
    finally:
        await redis.aclose()
        await raw.aclose()

    ids = [str(e.event_id) for e in expected]
    live_poison = sum(1 for op in ops if isinstance(op, Poison) and op.to_channel)
    stored_poison = sum(1 for op in ops if isinstance(op, Poison) and op.to_stream)
    assert live == expected  # exactly once, in order
    assert http_live == ids
    assert resumed == ids
    assert resets == []
    assert replay.events == expected
    assert replay.complete
    for seen in replays:  # each replay during the writes: a prefix of what was published
        assert seen == expected[: len(seen)]
    assert live_sub.stats.malformed == live_poison
    assert endpoint.subscriber.stats.malformed >= live_poison  # + entries the resume skipped
    assert final.stats.malformed == stored_poison


@pytest.mark.redis
@settings(parent=HYPOTHESIS, max_examples=15)
@given(scenario=scenarios(), decode=st.booleans())
def test_hostile_writes_never_break_live_http_or_replay(
    redis_server: RedisServer, scenario: tuple[UUID, list[SSEEvent | Poison]], decode: bool
) -> None:
    user, ops = scenario
    asyncio.run(_run(redis_server.url, decode, user, ops))
