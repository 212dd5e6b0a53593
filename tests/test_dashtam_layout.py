"""SSE_KEY_LAYOUT=dashtam on a real redis-server: ssewatch reads what the seed application
writes (byte for byte, written here with raw commands) and writes exactly what it writes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis

from dashboard.cli import main
from dashboard.replay_panel import render_summary
from sse_core import RedisSSEPublisher, RedisSSESubscriber, SSEEvent, SSESettings, dashtam, uuid7
from sse_core.frames import events_to_frame, load_events
from sse_core.keys import DashtamChannelKeys
from sse_core.layouts import get_layout
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.seed_app import SeedEvent, SeedPublisher, raw_entries, uuid7_like
from tests.test_notebooks import ROOT, _execute, _kernel_env, _keys_under

pytestmark = pytest.mark.redis

KEYS = DashtamChannelKeys()
DASHTAM = SSESettings(key_layout="dashtam", enable_retention=True)


def seed_event(user: UUID, i: int, *, skew: timedelta = timedelta(0), **data: Any) -> SeedEvent:
    """An event made on an application host whose clock is ``skew`` off Redis's."""
    when = datetime.now(UTC) + skew
    return SeedEvent(
        event_type="import.progress",
        user_id=user,
        data={"i": i, **data},
        event_id=uuid7_like(int(when.timestamp() * 1000)),
        occurred_at=when,
    )


def as_seed(event: SeedEvent) -> tuple[UUID, str, UUID, dict[str, Any], datetime]:
    return event.event_id, event.event_type, event.user_id, event.data, event.occurred_at


def as_ours(event: SSEEvent) -> tuple[UUID, str, UUID, dict[str, Any], datetime]:
    return event.event_id, event.event_type.value, event.user_id, event.data, event.occurred_at


@pytest.fixture
def seed(redis_client: Redis) -> SeedPublisher:
    return SeedPublisher(redis_client)


@pytest.fixture
def subscriber(redis_client: Redis) -> RedisSSESubscriber:
    return RedisSSESubscriber.from_settings(redis_client, DASHTAM)


async def test_replay_finds_the_position_by_id_whatever_the_clocks(
    redis_client: Redis, seed: SeedPublisher, subscriber: RedisSSESubscriber
) -> None:
    user = uuid4()
    # Two application hosts, one an hour behind Redis and one ten minutes ahead: entry ids are
    # Redis time, so only the event id can say where the client stands.
    events = [
        seed_event(user, i, skew=timedelta(hours=-1) if i % 2 else timedelta(minutes=10))
        for i in range(40)
    ]
    for e in events:
        await seed.publish(e)
    replay = await subscriber.replay(user, events[24].event_id)
    assert [as_ours(e) for e in replay.events] == [as_seed(e) for e in events[25:]]
    assert replay.complete
    assert not replay.includes_broadcasts  # the seed does not retain broadcasts: said so
    assert await subscriber.get_missed_events(user, events[-1].event_id) == []
    filtered = await subscriber.replay(user, events[0].event_id, categories=["ai"])
    assert filtered.events == []
    assert filtered.complete

    lost = await subscriber.replay(user, uuid7())  # trimmed, expired, or a broadcast
    assert not lost.complete


async def test_replay_reads_what_was_missed_not_what_is_retained(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = uuid4()
    seed = SeedPublisher(redis_client, max_len=5000)
    events = [seed_event(user, i) for i in range(3000)]
    pipe = redis_client.pipeline(transaction=False)
    for e in events[:-1]:  # the seed's XADD, pipelined to keep the test quick
        pipe.execute_command(
            *["XADD", KEYS.user_stream(user), "MAXLEN", "~", 5000, "*"],
            *["event_id", str(e.event_id), "event_type", e.event_type],
            *["data", json.dumps(e.data), "occurred_at", e.occurred_at.isoformat()],
        )
    await pipe.execute()
    await seed.publish(events[-1])  # the newest, the seed's own way
    decoded = 0
    decode = dashtam.decode_entry

    def counting(fields: Any, user_id: UUID) -> SSEEvent:
        nonlocal decoded
        decoded += 1
        return decode(fields, user_id)

    monkeypatch.setattr(dashtam, "decode_entry", counting)
    subscriber = RedisSSESubscriber.from_settings(redis_client, DASHTAM)
    for missed in (0, 10, 100, 1000):
        decoded = 0
        replay = await subscriber.replay(user, events[-1 - missed].event_id)
        assert [e.event_id for e in replay.events] == [
            e.event_id for e in events[len(events) - missed :]
        ]
        assert replay.complete
        assert decoded <= 2 * (missed + 2) + dashtam.FIRST_PAGE, (missed, decoded)


async def test_seed_stream_entries_and_messages_are_ours_byte_for_byte(
    redis_client: Redis, seed: SeedPublisher
) -> None:
    seed_user, our_user = uuid4(), uuid4()
    publisher = RedisSSEPublisher.from_settings(redis_client, DASHTAM)
    publisher.raise_errors = True
    data = {"file": "bank.qfx", "rows": [1, 2.5, None], "note": "é ü 日本 \u2028 <b>"}
    ours = SSEEvent(event_type="import.progress", user_id=our_user, data=data)
    theirs = SeedEvent(
        event_type="import.progress",
        user_id=seed_user,
        data=data,
        event_id=ours.event_id,
        occurred_at=ours.occurred_at,
    )
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(KEYS.user_channel(seed_user), KEYS.user_channel(our_user))
    await pubsub.subscribe(KEYS.broadcast_channel())
    for _ in range(3):
        await pubsub.get_message(timeout=5)
    await seed.publish(theirs)
    await publisher.publish(ours)
    await seed.broadcast(theirs)
    await publisher.broadcast(ours)
    messages = []
    while len(messages) < 4:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        if message is not None:
            messages.append(message)
    await pubsub.aclose()

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else value

    seed_user_msg, our_user_msg, seed_bc, our_bc = (text(m["data"]) for m in messages)
    swap = seed_user_msg.replace(str(seed_user), str(our_user))
    assert our_user_msg == swap
    assert our_bc == our_user_msg  # the same event; only the channel differs
    assert seed_bc == seed_user_msg
    assert [text(m["channel"]) for m in messages[2:]] == [KEYS.broadcast_channel()] * 2

    seed_rows = raw_entries(await redis_client.xrange(KEYS.user_stream(seed_user)))
    our_rows = raw_entries(await redis_client.xrange(KEYS.user_stream(our_user)))
    assert our_rows == seed_rows
    assert list(our_rows[0]) == ["event_id", "event_type", "data", "occurred_at"]
    assert await redis_client.ttl(KEYS.user_stream(our_user)) == 3600
    # Broadcasts are not retained; nothing else was written.
    names = sorted(text(k) for k in await redis_client.keys("*"))
    assert names == sorted([KEYS.user_stream(seed_user), KEYS.user_stream(our_user)])

    # EXPIRE only when the key has no TTL: an existing one is left alone by both.
    for key in (KEYS.user_stream(seed_user), KEYS.user_stream(our_user)):
        await redis_client.expire(key, 50)
    await seed.publish(SeedEvent("import.progress", seed_user, {"n": 2}))
    await publisher.publish(SSEEvent(event_type="import.progress", user_id=our_user))
    for key in (KEYS.user_stream(seed_user), KEYS.user_stream(our_user)):
        assert 0 < await redis_client.ttl(key) <= 50
    assert publisher.stats.published == 3


async def test_live_delivery_reads_the_seed_channels(
    redis_client: Redis, seed: SeedPublisher, subscriber: RedisSSESubscriber
) -> None:
    user = uuid4()
    sent = [seed_event(user, i) for i in range(3)]
    shout = seed_event(uuid4(), 99)

    async def take(count: int) -> list[SSEEvent]:
        got = []
        async for e in subscriber.subscribe(user):
            got.append(e)
            if len(got) == count:
                break
        return got

    task = asyncio.ensure_future(take(5))
    await eventually(
        lambda: _numsub(redis_client, KEYS.user_channel(user)), what="the seed channel"
    )
    await redis_client.execute_command("PUBLISH", KEYS.user_channel(user), "{not json")
    for e in sent:
        await seed.publish(e)
    await seed.broadcast(shout)
    await seed.publish(seed_event(user, 4))
    got = await asyncio.wait_for(task, 10)
    assert [as_ours(e) for e in got[:4]] == [as_seed(e) for e in [*sent, shout]]
    assert subscriber.stats.malformed == 1  # skipped and counted, never fatal


async def _numsub(redis: Redis, channel: str) -> bool:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count) > 0


async def test_resume_after_a_reconnect_replays_from_the_seed_stream(
    redis_client: Redis, seed: SeedPublisher, subscriber: RedisSSESubscriber
) -> None:
    user = uuid4()
    before = [seed_event(user, i) for i in range(5)]
    for e in before:
        await seed.publish(e)
    stream = subscriber.stream(user, last_event_id=before[1].event_id)
    got = [await asyncio.wait_for(anext(stream), 5) for _ in range(3)]
    assert [e.event_id for e in got if isinstance(e, SSEEvent)] == [e.event_id for e in before[2:]]
    after = seed_event(user, 5)
    await seed.publish(after)
    live = await asyncio.wait_for(anext(stream), 5)
    assert isinstance(live, SSEEvent)
    assert live.event_id == after.event_id
    await stream.aclose()  # type: ignore[attr-defined]


async def test_load_events_reads_seed_streams_with_user_from_the_key(
    redis_client: Redis, seed: SeedPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [uuid4(), uuid4()]
    events = [seed_event(users[i % 2], i) for i in range(6)]
    for e in events:
        await seed.publish(e)
    monkeypatch.setenv("SSE_KEY_LAYOUT", "dashtam")  # load_events honours the settings
    frame = await load_events(redis_client)
    assert sorted(frame["event_id"]) == sorted(str(e.event_id) for e in events)
    by_id = {str(e.event_id): str(e.user_id) for e in events}
    assert all(by_id[row.event_id] == str(row.user_id) for row in frame.itertuples())
    assert frame.attrs["includes_broadcasts"] is False
    one = await load_events(redis_client, users[0], since=events[0].event_id)
    assert list(one["event_id"]) == [str(e.event_id) for e in events[2::2]]
    assert one.attrs["complete"] is True


async def test_both_layouts_on_one_redis_do_not_see_each_other(redis_client: Redis) -> None:
    user = uuid4()
    ours = RedisSSEPublisher.from_settings(redis_client, SSESettings())
    theirs = RedisSSEPublisher.from_settings(redis_client, DASHTAM)
    await ours.publish(SSEEvent(event_type="ai.response.chunk", user_id=user))
    await theirs.publish(SSEEvent(event_type="ai.response.chunk", user_id=user))
    await ours.publish(SSEEvent(event_type="ai.response.chunk", user_id=user))
    for settings in (SSESettings(), DASHTAM):
        sub = RedisSSESubscriber.from_settings(redis_client, settings)
        frame = await load_events(redis_client, user, keys=settings.channel_keys())
        assert len(frame) == (2 if settings.key_layout == "ssewatch" else 1)
        assert sub.keys.user_stream(user) == settings.channel_keys().user_stream(user)


def test_unknown_layout_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="valid layouts are ssewatch, dashtam"):
        SSESettings(key_layout="redis")
    with pytest.raises(ValueError, match="'seed'"):
        get_layout("seed")
    assert SSESettings(key_layout=" Dashtam ").key_layout == "dashtam"


@pytest.mark.notebook
@pytest.mark.parametrize("name", ["01_explore_events.ipynb", "03_replay_after_outage.ipynb"])
def test_notebooks_run_in_the_dashtam_layout(name: str, redis_server: RedisServer) -> None:
    prefix = f"nbseed_{uuid4().hex[:8]}"
    env = _kernel_env(
        SSE_REDIS_URL=redis_server.url, SSE_KEY_PREFIX=prefix, SSE_KEY_LAYOUT="dashtam"
    )
    printed = _execute(ROOT / "notebooks" / name, env)
    assert "Redis: redis://" in printed
    keys = asyncio.run(_keys_under(redis_server.url, prefix))
    assert keys
    # The seed's names only: sse:stream:user:<uuid>, nothing hash-tagged.
    assert all(b":stream:user:" in key and b"{" not in key for key in keys)


def test_ssewatch_demo_writes_the_seed_layout(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"demo{uuid4().hex[:6]}"
    monkeypatch.setenv("SSE_KEY_LAYOUT", "dashtam")
    monkeypatch.setenv("SSE_KEY_PREFIX", prefix)
    argv = ["demo", "--redis-url", redis_server.url, "--max-events", "30", "--seed", "3"]
    assert main(argv) == 0
    keys = asyncio.run(_keys_under(redis_server.url, prefix))
    assert keys
    assert all(key.startswith(f"{prefix}:stream:user:".encode()) for key in keys)


def test_the_replay_panel_says_broadcasts_are_not_retained() -> None:
    frame = events_to_frame([])
    said = render_summary(frame, True, str(uuid7()), includes_broadcasts=False)
    assert "broadcasts are not retained" in said
    assert "broadcasts" not in render_summary(frame, True, str(uuid7()))
