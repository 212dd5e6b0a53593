"""Pure domain rules: categories, registry, ids, keys and the event model (its wire form is in
tests/test_wire.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid1, uuid4
from zoneinfo import ZoneInfo

import pytest

from sse_core import (
    EVENT_REGISTRY,
    SSEChannelKeys,
    SSEEvent,
    SSEEventCategory,
    SSEEventType,
    get_category_for_event_type,
    parse_event_id,
    parse_user_id,
    uuid7,
    validate_categories,
)
from sse_core.categories import parse_category_list
from sse_core.ids import uuid7_time_ms
from sse_core.keys import DashtamChannelKeys


def test_validate_categories_keeps_order_and_drops_duplicates() -> None:
    assert validate_categories(["ai", "data_sync", "ai"]) == [
        SSEEventCategory.AI,
        SSEEventCategory.DATA_SYNC,
    ]
    assert validate_categories(None) == []


@pytest.mark.parametrize("names", [["ai", "bogus"], ["bogus", "nope"], "ai"])
def test_invalid_category_names_it_and_lists_valid_ones(names: list[str]) -> None:
    with pytest.raises(ValueError, match=r"^Invalid category") as info:
        validate_categories(names)
    assert ("'bogus'" in str(info.value)) is ("bogus" in names)
    for valid in ("data_sync", "provider", "ai", "import", "portfolio", "security"):
        assert valid in str(info.value)


def test_category_list_accepts_repeated_and_comma_forms() -> None:
    assert parse_category_list(["ai,security", "import", " "]) == [
        SSEEventCategory.AI,
        SSEEventCategory.SECURITY,
        SSEEventCategory.IMPORT,
    ]


def test_every_event_type_has_a_registry_row_with_matching_prefix() -> None:
    assert set(EVENT_REGISTRY) == set(SSEEventType)
    prefixes = {"sync": SSEEventCategory.DATA_SYNC}
    for event_type, info in EVENT_REGISTRY.items():
        head = event_type.value.split(".")[0]
        assert (prefixes[head] if head in prefixes else SSEEventCategory(head)) is info.category
        assert event_type.name == event_type.value.replace(".", "_").upper()


def test_category_lookup_and_unknown_type() -> None:
    assert get_category_for_event_type("sync.accounts.completed") is SSEEventCategory.DATA_SYNC
    with pytest.raises(ValueError, match=r"sync\.accounts\.completed"):
        get_category_for_event_type("sync.nothing")


def test_uuid7_is_version_7_monotonic_and_carries_time() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    ids = [uuid7() for _ in range(5000)]
    after = int(datetime.now(UTC).timestamp() * 1000)
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in ids)
    assert ids == sorted(ids, key=lambda u: u.int)
    assert len(set(ids)) == len(ids)
    assert before <= uuid7_time_ms(ids[0]) <= uuid7_time_ms(ids[-1]) <= after + 1


def test_uuid7_stays_monotonic_when_clock_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    first = uuid7()
    monkeypatch.setattr("sse_core.ids.time.time_ns", lambda: 1_000_000_000)
    second = uuid7()
    assert second.int > first.int
    assert uuid7_time_ms(uuid7(now_ms=1234)) == 1234


def test_parse_ids_give_clear_errors() -> None:
    user = uuid4()
    assert parse_user_id(str(user)) == user
    with pytest.raises(ValueError, match="invalid user id 'nope'"):
        parse_user_id("nope")
    with pytest.raises(ValueError, match="UUIDv7"):
        parse_event_id(str(uuid4()))
    event_id = uuid7()
    assert parse_event_id(f" {event_id} ") == event_id


def test_event_defaults_and_immutability() -> None:
    user = uuid4()
    event = SSEEvent(event_type=SSEEventType.AI_RESPONSE_CHUNK, user_id=user, data={"i": 1})
    assert event.event_id.version == 7
    assert event.occurred_at.tzinfo is UTC
    assert event.category is SSEEventCategory.AI
    # The seed's SSEEvent is a frozen dataclass: its callers catch AttributeError.
    with pytest.raises(AttributeError, match="'user_id'"):
        event.user_id = uuid4()  # type: ignore[misc]
    with pytest.raises(AttributeError, match="'data'"):
        del event.data
    assert event.user_id == user
    assert event.model_copy(update={"data": {"i": 2}}).data == {"i": 2}  # copies still work


def test_occurred_at_is_normalised_to_utc() -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    event = SSEEvent(event_type="ai.response.chunk", user_id=uuid4(), occurred_at=local)
    assert event.occurred_at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    naive = SSEEvent(
        event_type="ai.response.chunk", user_id=uuid4(), occurred_at=datetime(2026, 1, 1)
    )
    assert naive.occurred_at.tzinfo is UTC


def test_a_decoded_utc_time_is_kept_and_other_zones_converted() -> None:
    # A decoded "Z" time keeps pydantic's own UTC tzinfo (converting it cost every replayed
    # event ~0.5 us); a zone that is merely at offset 0 that day is still converted.
    user = uuid4()
    decoded = SSEEvent.model_validate_json(
        json.dumps(
            {
                "event_type": "ai.response.chunk",
                "user_id": str(user),
                "occurred_at": "2026-01-01T10:00:00Z",
            }
        )
    )
    assert decoded.occurred_at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert decoded.occurred_at.tzname() == "UTC"
    london = datetime(2026, 1, 1, 10, 0, tzinfo=ZoneInfo("Europe/London"))  # GMT: offset 0
    event = SSEEvent(event_type="ai.response.chunk", user_id=user, occurred_at=london)
    assert event.occurred_at.tzinfo is UTC
    assert event.occurred_at.tzname() == "UTC"


def test_dict_round_trip_is_json_safe() -> None:
    event = SSEEvent(
        event_type="portfolio.balance.updated",
        user_id=uuid4(),
        data={"balance": 12.5, "nested": {"a": [1, 2]}},
    )
    payload = event.to_dict()
    assert json.loads(json.dumps(payload)) == payload
    assert payload["event_type"] == "portfolio.balance.updated"
    assert payload["category"] == "portfolio"
    assert SSEEvent.from_dict(payload) == event


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event_type": "nope.type"}, "event_type"),
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
    ],
)
def test_from_dict_rejects_bad_values(change: dict[str, str], message: str) -> None:
    payload = SSEEvent(event_type="ai.response.chunk", user_id=uuid4()).to_dict()
    with pytest.raises(ValueError, match=message):
        SSEEvent.from_dict({**payload, **change})


@pytest.mark.parametrize("field", ["event_id", "event_type", "user_id", "data", "occurred_at"])
def test_from_dict_missing_field_is_a_key_error_naming_it(field: str) -> None:
    payload = SSEEvent(event_type="ai.response.chunk", user_id=uuid4()).to_dict()
    del payload[field]
    with pytest.raises(KeyError, match=field):
        SSEEvent.from_dict(payload)


def test_keys_share_a_hash_tag_per_user_and_parse_back() -> None:
    keys = SSEChannelKeys()
    user = uuid4()
    channel, stream = keys.user_channel(user), keys.user_stream(user)
    tag = channel[channel.index("{") : channel.index("}") + 1]
    assert tag in stream
    assert tag == f"{{u:{user}}}"
    assert channel.startswith("sse:")
    assert keys.parse_user_id_from_channel(channel) == user
    assert keys.parse_user_id_from_channel(keys.broadcast_channel()) is None
    assert keys.is_broadcast_channel(keys.broadcast_channel())
    assert not keys.is_broadcast_channel(channel)
    assert keys.parse_user_id_from_stream(stream) == user
    assert keys.parse_user_id_from_channel("sse:{u:zzz}:events") is None
    assert SSEChannelKeys("app").user_channel(user).startswith("app:")
    with pytest.raises(ValueError, match="prefix"):
        SSEChannelKeys("a{b")


def test_keys_are_callable_on_the_class_with_default_names() -> None:
    user = uuid4()
    assert SSEChannelKeys.user_channel(user) == SSEChannelKeys().user_channel(user)
    assert SSEChannelKeys.user_stream(user) == f"sse:{{u:{user}}}:stream"
    assert SSEChannelKeys.broadcast_channel() == "sse:{broadcast}:events"
    assert SSEChannelKeys.parse_user_id_from_channel(SSEChannelKeys.user_channel(user)) == user
    # An instance with another prefix still answers with its own names.
    assert SSEChannelKeys("tenant").user_stream(user) == f"tenant:{{u:{user}}}:stream"


def test_dashtam_keys_are_the_seeds_names() -> None:
    user = uuid4()
    assert DashtamChannelKeys.user_channel(user) == f"sse:user:{user}"
    assert DashtamChannelKeys.broadcast_channel() == "sse:broadcast"
    assert DashtamChannelKeys.user_stream(user) == f"sse:stream:user:{user}"
    assert DashtamChannelKeys.parse_user_id_from_channel(f"sse:user:{user}") == user
    assert DashtamChannelKeys.parse_user_id_from_channel("sse:broadcast") is None
    assert DashtamChannelKeys.parse_user_id_from_channel(f"sse:user:{user}:x") is None
    assert DashtamChannelKeys.parse_user_id_from_stream(f"sse:stream:user:{user}") == user
    assert DashtamChannelKeys.is_broadcast_channel("sse:broadcast")
    assert DashtamChannelKeys.user_stream_pattern() == "sse:stream:user:*"
    assert DashtamChannelKeys("app").user_channel(user) == f"app:user:{user}"


@pytest.mark.parametrize("foreign", [uuid4(), UUID(int=5), uuid1()], ids=["v4", "nil-ish", "v1"])
def test_event_ids_must_be_uuid7_at_construction(foreign: UUID) -> None:
    # A browser resuming from such an id would get 400 forever (replay seeks by the id's time):
    # refuse it where it is made, with the same message the endpoint gives.
    with pytest.raises(ValueError, match="ssewatch event ids are UUIDv7") as caught:
        SSEEvent(event_id=foreign, event_type="ai.response.chunk", user_id=uuid4())
    assert "leave event_id out" in str(caught.value)
    with pytest.raises(ValueError, match="ssewatch event ids are UUIDv7"):
        SSEEvent.from_dict(
            {
                "event_id": str(foreign),
                "event_type": "ai.response.chunk",
                "user_id": str(uuid4()),
                "data": {},
                "occurred_at": "2026-01-01T00:00:00+00:00",
            }
        )
    with pytest.raises(ValueError, match="ssewatch event ids are UUIDv7"):
        parse_event_id(str(foreign))


def test_every_id_an_event_accepts_is_one_the_endpoint_resumes_from() -> None:
    event = SSEEvent(
        event_id=uuid7(now_ms=1_700_000_000_000), event_type="ai.response.chunk", user_id=uuid4()
    )
    assert parse_event_id(str(event.event_id)) == event.event_id
    assert event.time_ms == 1_700_000_000_000
