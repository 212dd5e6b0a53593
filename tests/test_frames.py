"""Events as a table (``events_to_frame``) and retained history as a table (``load_events``).

Pure tests build events by hand; loading runs on fakeredis, and the parts that depend on real
Redis behaviour (approximate trimming, both reply encodings, a real connection) on the session's
redis-server.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from dashboard.demo import BROADCAST_USER, DEMO_USERS, DemoTraffic
from sse_core import (
    RedisSSEPublisher,
    RedisSSESubscriber,
    SSEChannelKeys,
    SSEEvent,
    SSEEventCategory,
    SSEEventType,
    uuid7,
)
from sse_core.frames import (
    COMPLETE_ATTR,
    EVENT_COLUMNS,
    events_to_frame,
    load_events,
    load_events_sync,
)
from tests.support.redis_server import RedisServer

ALICE, BOB = DEMO_USERS["alice"], DEMO_USERS["bob"]
# A minute ago, so every test event lies well inside the default one-hour retention TTL.
BASE_MS = time.time_ns() // 1_000_000 - 60_000


def event(
    offset_ms: int,
    user: UUID = ALICE,
    event_type: SSEEventType = SSEEventType.AI_RESPONSE_CHUNK,
    data: dict[str, Any] | None = None,
) -> SSEEvent:
    ms = BASE_MS + offset_ms
    return SSEEvent(
        event_id=uuid7(now_ms=ms),
        event_type=event_type,
        user_id=user,
        data=data or {},
        occurred_at=datetime.fromtimestamp(ms / 1000, UTC),
    )


def ids(events: Iterable[SSEEvent]) -> list[str]:
    return [str(e.event_id) for e in events]


# -- events_to_frame ---------------------------------------------------------------------------


def assert_fixed_dtypes(frame: pd.DataFrame) -> None:
    assert list(frame.columns[: len(EVENT_COLUMNS)]) == list(EVENT_COLUMNS)
    assert frame["event_id"].dtype == "string"
    assert frame["user_id"].dtype == "string"
    assert isinstance(frame["occurred_at"].dtype, pd.DatetimeTZDtype)
    assert str(frame["occurred_at"].dt.tz) == "UTC"
    assert list(frame["category"].cat.categories) == [c.value for c in SSEEventCategory]
    assert list(frame["event_type"].cat.categories) == [t.value for t in SSEEventType]


def test_empty_input_gives_the_fixed_columns_with_their_dtypes() -> None:
    frame = events_to_frame([])
    assert list(frame.columns) == list(EVENT_COLUMNS)
    assert frame.empty
    assert_fixed_dtypes(frame)


def test_one_row_per_event_in_the_given_order_with_typed_columns() -> None:
    events = [
        event(2, BOB, SSEEventType.SECURITY_LOGIN_FAILED, {"ip": "203.0.113.9", "attempts": 2}),
        event(1, ALICE, SSEEventType.SYNC_ACCOUNTS_COMPLETED, {"account_count": 3}),
    ]
    frame = events_to_frame(iter(events))  # any iterable, e.g. a generator
    assert_fixed_dtypes(frame)
    assert frame["event_id"].tolist() == ids(events)
    assert frame["user_id"].tolist() == [str(BOB), str(ALICE)]
    assert frame["category"].tolist() == ["security", "data_sync"]
    assert frame["event_type"].tolist() == ["security.login.failed", "sync.accounts.completed"]
    assert frame["occurred_at"].tolist() == [pd.Timestamp(e.occurred_at) for e in events]
    assert frame["data.attempts"].tolist()[0] == 2
    assert pd.isna(frame["data.attempts"].tolist()[1])
    assert frame["data.account_count"].tolist()[1] == 3


def test_counts_by_category_include_categories_with_no_events() -> None:
    frame = events_to_frame([event(0), event(1)])
    counts = frame["category"].value_counts()
    assert counts["ai"] == 2
    assert set(counts.index) == {c.value for c in SSEEventCategory}
    assert (counts.drop("ai") == 0).all()


def test_occurred_at_is_utc_whatever_zone_the_event_came_with() -> None:
    paris = timezone(timedelta(hours=1))
    local = SSEEvent(
        event_type=SSEEventType.IMPORT_STARTED,
        user_id=ALICE,
        occurred_at=datetime(2026, 1, 2, 13, 30, tzinfo=paris),
    )
    stamp = events_to_frame([local])["occurred_at"].iloc[0]
    assert stamp == pd.Timestamp("2026-01-02 12:30", tz="UTC")
    assert str(stamp.tz) == "UTC"


def test_payload_is_flattened_with_dots_after_a_data_prefix() -> None:
    payload = {
        "provider": "plaid",
        "limits": {"daily": 10, "per_call": {"max": 2}},
        "empty": {},
        "tags": ["a", "b"],
        "event_id": "not the real one",
    }
    frame = events_to_frame([event(0, data=payload)])
    assert list(frame.columns[len(EVENT_COLUMNS) :]) == [
        "data.provider",
        "data.limits.daily",
        "data.limits.per_call.max",
        "data.empty",
        "data.tags",
        "data.event_id",
    ]
    row = frame.iloc[0]
    assert row["data.limits.per_call.max"] == 2
    assert row["data.empty"] == {}
    assert row["data.tags"] == ["a", "b"]
    assert row["data.event_id"] == "not the real one"
    assert row["event_id"] != "not the real one"


def test_payload_columns_appear_in_first_seen_order_with_gaps_as_missing() -> None:
    frame = events_to_frame(
        [event(0, data={"b": 1}), event(1, data={"a": "x", "b": 2}), event(2, data={"c": True})]
    )
    assert list(frame.columns[len(EVENT_COLUMNS) :]) == ["data.b", "data.a", "data.c"]
    assert frame["data.b"].tolist()[:2] == [1, 2]
    assert frame[["data.a", "data.c"]].isna().sum().tolist() == [2, 2]


def test_whole_numbers_and_flags_missing_from_some_rows_stay_integer_and_boolean() -> None:
    frame = events_to_frame(
        [
            event(0, data={"percent": 20, "ratio": 1.0, "done": False}),
            event(1, data={"rows_imported": 4737, "ratio": 2.0, "big": 2**70}),
            event(2, data={"percent": None, "big": 1}),
        ]
    )
    assert str(frame["data.percent"].dtype) == "Int64"
    assert str(frame["data.rows_imported"].dtype) == "Int64"
    assert str(frame["data.done"].dtype) == "boolean"
    assert frame["data.ratio"].dtype == "float64"  # floats stay floats, even whole ones
    assert frame["data.big"].dtype == object  # beyond int64: kept as Python ints
    assert frame["data.percent"].isna().tolist() == [False, True, True]
    lines = frame.drop(columns=["occurred_at"]).to_csv(index=False).splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert [r["data.percent"] for r in rows] == ["20", "", ""]
    assert [r["data.rows_imported"] for r in rows] == ["", "4737", ""]
    assert [r["data.ratio"] for r in rows] == ["1.0", "2.0", ""]


# Leaf strings come from an explicit alphabet (ASCII, accents, CJK, an astral emoji, markup,
# quotes, control characters): st.text()'s default alphabet makes Hypothesis derive the whole
# UTF-8 codec's code-point intervals inside the first draw (~1.5 s here, cached under
# .hypothesis/ afterwards), which failed the too_slow health check on every fresh clone.
_LEAF_CHARS = "az09 .\u00e9\u4e2d\U0001f600<>&\"'\\\n\t\x00"
_leaf = st.one_of(
    st.integers(), st.text(alphabet=_LEAF_CHARS, max_size=5), st.booleans(), st.none()
)
_key = st.text(alphabet="abcxyz_", min_size=1, max_size=4)
_payload = st.recursive(
    st.dictionaries(_key, _leaf, max_size=4),
    lambda inner: st.dictionaries(_key, st.one_of(_leaf, inner), max_size=4),
    max_leaves=12,
)


def _leaves(payload: dict[str, Any], path: tuple[str, ...] = ()) -> Iterable[tuple[str, Any]]:
    for key, value in payload.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*path, key))
        else:
            yield ".".join(("data", *path, key)), value


@given(_payload)
def test_every_payload_leaf_lands_in_its_dotted_column(payload: dict[str, Any]) -> None:
    row = events_to_frame([event(0, data=payload)]).iloc[0]
    # Keys are dot-free here, so no two leaves share a dotted name.
    for column, value in _leaves(payload):
        got = row[column]
        assert got is value or got == value or (value is None and pd.isna(got))


def test_the_frame_groups_by_minute_and_category() -> None:
    def at(minute: int, second: int, event_type: SSEEventType) -> SSEEvent:
        moment = datetime(2026, 1, 1, 12, minute, second, tzinfo=UTC)
        return SSEEvent(event_type=event_type, user_id=ALICE, occurred_at=moment)

    chunk, started = SSEEventType.AI_RESPONSE_CHUNK, SSEEventType.IMPORT_STARTED
    frame = events_to_frame([at(0, 10, chunk), at(0, 40, chunk), at(1, 5, started)])
    per_minute = frame.groupby(
        [pd.Grouper(key="occurred_at", freq="1min"), "category"], observed=True
    ).size()
    noon = pd.Timestamp("2026-01-01 12:00", tz="UTC")
    assert per_minute.to_dict() == {(noon, "ai"): 2, (noon + pd.Timedelta("1min"), "import"): 1}


# -- load_events on fakeredis ------------------------------------------------------------------


def retaining(client: Redis, **kwargs: Any) -> RedisSSEPublisher:
    return RedisSSEPublisher(client, enable_retention=True, raise_errors=True, **kwargs)


async def test_nothing_retained_gives_an_empty_complete_frame(fake_redis: Redis) -> None:
    for frame in (await load_events(fake_redis), await load_events(fake_redis, ALICE)):
        assert list(frame.columns) == list(EVENT_COLUMNS)
        assert frame.empty
        assert frame.attrs[COMPLETE_ATTR] is True


async def test_one_user_gets_own_events_and_broadcasts_in_publication_order(
    fake_redis: Redis,
) -> None:
    publisher = retaining(fake_redis)
    a1, b1, a2 = event(0, ALICE), event(1, BOB), event(3, ALICE)
    shout = event(2, BROADCAST_USER, SSEEventType.PROVIDER_DISCONNECTED, {"provider": "plaid"})
    await publisher.publish_many([a1, b1])
    await publisher.broadcast(shout)
    await publisher.publish(a2)

    alice = await load_events(fake_redis, ALICE)
    assert alice["event_id"].tolist() == ids([a1, shout, a2])
    assert alice.attrs[COMPLETE_ATTR] is True
    bob = await load_events(fake_redis, str(BOB))  # a string id works too
    assert bob["event_id"].tolist() == ids([b1, shout])


async def test_everyone_gets_every_event_once_in_time_order(fake_redis: Redis) -> None:
    traffic = DemoTraffic(retaining(fake_redis), seed=7, broadcast_share=0.05)
    await traffic.publish_batch(300)

    frame = await load_events(fake_redis)
    assert len(frame) == traffic.published == 300
    assert frame["event_id"].is_unique
    assert frame["occurred_at"].is_monotonic_increasing
    assert set(frame["user_id"]) == {str(u) for u in (*DEMO_USERS.values(), BROADCAST_USER)}
    broadcasts = frame[frame["user_id"] == str(BROADCAST_USER)]
    assert len(broadcasts) > 0
    assert frame.attrs[COMPLETE_ATTR] is True
    # The same rows as reading each user on its own, broadcasts counted once.
    per_user = [await load_events(fake_redis, u) for u in DEMO_USERS.values()]
    assert set(pd.concat(per_user)["event_id"]) == set(frame["event_id"])


async def test_broadcasts_alone_are_still_found_for_everyone(fake_redis: Redis) -> None:
    shout = event(0, BROADCAST_USER, SSEEventType.PROVIDER_DISCONNECTED, {"provider": "plaid"})
    await retaining(fake_redis).broadcast(shout)
    assert (await load_events(fake_redis))["event_id"].tolist() == ids([shout])


async def test_since_an_event_id_gives_what_came_after_it(fake_redis: Redis) -> None:
    publisher = retaining(fake_redis)
    a1, b1, a2, b2, a3 = (event(i, [ALICE, BOB][i % 2]) for i in range(5))
    await publisher.publish_many([a1, b1, a2, b2, a3])

    alice = await load_events(fake_redis, ALICE, since=a1.event_id)
    assert alice["event_id"].tolist() == ids([a2, a3])
    assert alice.attrs[COMPLETE_ATTR] is True
    # For everyone, the id is a point in time: other users' later events count too.
    everyone = await load_events(fake_redis, since=str(a2.event_id))
    assert everyone["event_id"].tolist() == ids([b2, a3])
    # The same as the subscriber's own replay for that user.
    subscriber = RedisSSESubscriber(fake_redis, enable_retention=True)
    missed = await subscriber.get_missed_events(ALICE, a1.event_id)
    assert alice["event_id"].tolist() == ids(missed)


@pytest.fixture
def local_zone_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's zone is New York, so reading a naive time as local would show."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone_not_utc")
async def test_since_a_time_includes_events_from_that_moment_on(fake_redis: Redis) -> None:
    publisher = retaining(fake_redis)
    events = [event(i * 1000, [ALICE, BOB][i % 2]) for i in range(6)]
    await publisher.publish_many(events)
    cut = events[3].occurred_at

    expected_everyone = ids(events[3:])
    assert (await load_events(fake_redis, since=cut))["event_id"].tolist() == expected_everyone
    assert (await load_events(fake_redis, since=pd.Timestamp(cut)))[
        "event_id"
    ].tolist() == expected_everyone
    # A naive time (datetime or ISO string) means UTC, not the machine's zone.
    naive = cut.replace(tzinfo=None)
    for since in (naive, naive.isoformat(), cut.isoformat()):
        frame = await load_events(fake_redis, BOB, since=since)
        assert frame["event_id"].tolist() == ids(events[3::2])
        assert frame.attrs[COMPLETE_ATTR] is True


async def test_categories_filter_rows(fake_redis: Redis) -> None:
    await DemoTraffic(retaining(fake_redis), seed=3).publish_batch(200)
    everything = await load_events(fake_redis)
    chosen = await load_events(fake_redis, categories=["security", "ai"])
    assert set(chosen["category"]) <= {"security", "ai"}
    assert len(chosen) == everything["category"].isin(["security", "ai"]).sum()
    assert len(chosen) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"categories": ["sync"]}, "Invalid category 'sync'"),
        ({"since": "yesterday"}, "invalid since 'yesterday'"),
        ({"since": str(uuid4())}, "UUIDv7"),
        ({"since": uuid4()}, "UUIDv7"),
        ({"user_id": "alice"}, "invalid user id 'alice'"),
    ],
)
async def test_bad_arguments_are_named_in_the_error(
    fake_redis: Redis, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await load_events(fake_redis, **kwargs)


async def test_another_key_prefix_is_another_world(fake_redis: Redis) -> None:
    await retaining(fake_redis, keys=SSEChannelKeys("tenant_b")).publish(event(0))
    assert (await load_events(fake_redis)).empty
    other = await load_events(fake_redis, keys=SSEChannelKeys("tenant_b"))
    assert len(other) == 1


async def test_history_outrun_by_retention_is_flagged_incomplete(fake_redis: Redis) -> None:
    publisher = retaining(fake_redis, retention_max_len=50)
    events = [event(i) for i in range(400)]
    await publisher.publish_many(events)

    frame = await load_events(fake_redis, ALICE)
    assert 50 <= len(frame) < 400
    assert frame["event_id"].tolist() == ids(events[-len(frame) :])  # the newest are kept
    assert frame.attrs[COMPLETE_ATTR] is False
    # From an id that is gone, what is retained still comes back, flagged.
    after_lost = await load_events(fake_redis, ALICE, since=events[0].event_id)
    assert after_lost["event_id"].tolist() == frame["event_id"].tolist()
    assert after_lost.attrs[COMPLETE_ATTR] is False
    # From a retained id, nothing is missing.
    recent = await load_events(fake_redis, ALICE, since=events[-10].event_id)
    assert recent["event_id"].tolist() == ids(events[-9:])
    assert recent.attrs[COMPLETE_ATTR] is True


async def test_load_events_sync_refuses_to_run_inside_an_event_loop() -> None:
    with pytest.raises(RuntimeError, match="await load_events"):
        load_events_sync("redis://127.0.0.1:1/0")


# -- against the real redis-server -------------------------------------------------------------


@pytest.mark.redis
async def test_real_redis_everyone_one_user_and_trimming(redis_client: Redis) -> None:
    traffic = DemoTraffic(retaining(redis_client), seed=11)
    await traffic.publish_batch(250)
    everyone = await load_events(redis_client)
    assert len(everyone) == 250
    assert everyone["event_id"].is_unique
    assert everyone.attrs[COMPLETE_ATTR] is True
    alice = await load_events(redis_client, ALICE, categories=["portfolio"])
    expected = everyone[(everyone["category"] == "portfolio") & (everyone["user_id"] == str(ALICE))]
    assert alice["event_id"].tolist() == expected["event_id"].tolist()
    assert_fixed_dtypes(alice)

    # MAXLEN ~ trims whole macro-nodes of 100 entries: publish well past them.
    await redis_client.flushall()
    events = [event(i) for i in range(450)]
    await retaining(redis_client, retention_max_len=50).publish_many(events)
    trimmed = await load_events(redis_client, ALICE)
    assert trimmed.attrs[COMPLETE_ATTR] is False
    assert 50 <= len(trimmed) < 450
    assert trimmed["event_id"].tolist() == ids(events[-len(trimmed) :])


@pytest.mark.redis
def test_real_redis_load_events_sync_from_a_script(redis_server: RedisServer) -> None:
    """No running loop here, as in a plain script; called twice, each with its own client."""
    import asyncio

    async def seed() -> None:
        client = Redis.from_url(redis_server.url)
        try:
            await client.flushall()
            await retaining(client).publish_many([event(0, ALICE), event(1, BOB)])
        finally:
            await client.aclose()

    asyncio.run(seed())
    assert len(load_events_sync(redis_server.url)) == 2
    bob = load_events_sync(redis_server.url, BOB)
    assert bob["user_id"].tolist() == [str(BOB)]
