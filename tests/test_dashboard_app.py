"""The dashboard's Python side without a browser: controls, renderers, backend, lifecycle.

``Dashboard`` runs here exactly as in a notebook (no server session): it starts on the running
loop, consumes through sse_core on fakeredis, and stops on ``stop()``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import TypeVar
from uuid import UUID, uuid4

import pytest
from fakeredis import FakeAsyncRedis

from dashboard import Dashboard
from dashboard.backend import Backend
from dashboard.controls import UserPicker, format_category_query, parse_category_query
from dashboard.demo import DEMO_USERS
from dashboard.replay_panel import ReplayPanel
from dashboard.views import render_category_counts, render_stats, render_status
from sse_core.categories import SSEEventCategory
from sse_core.cluster_hub import connection_status
from sse_core.events import SSEEvent
from sse_core.hub import ConnectionState, ConnectionStatus
from sse_core.ids import uuid7
from sse_core.publisher import RedisSSEPublisher
from sse_core.registry import EVENT_REGISTRY, SSEEventType
from sse_core.replay import Replay
from sse_core.subscriber import SubscriberStats
from tests.support.polling import eventually

T = TypeVar("T")
TYPE_OF: dict[SSEEventCategory, SSEEventType] = {}
for _event_type, _info in EVENT_REGISTRY.items():
    TYPE_OF.setdefault(_info.category, _event_type)


def event(user: UUID, category: SSEEventCategory, **data: object) -> SSEEvent:
    return SSEEvent(event_type=TYPE_OF[category], user_id=user, data=data)


# -- controls and renderers ---------------------------------------------------------------------


def test_category_query_round_trip() -> None:
    assert parse_category_query("ai,data_sync") == (["data_sync", "ai"], None)
    assert parse_category_query("") == ([], None)
    assert format_category_query(["ai", "data_sync"]) == "data_sync,ai"
    assert format_category_query([c.value for c in SSEEventCategory]) == ""  # all = no filter
    assert format_category_query([]) == ""


def test_invalid_categories_are_reported_and_the_rest_kept() -> None:
    names, error = parse_category_query("ai,bogus, security")
    assert names == ["ai", "security"]
    assert error is not None
    assert "Invalid category 'bogus'" in error
    assert "valid categories are" in error


def test_user_picker_validates_typed_ids() -> None:
    picker = UserPicker()
    picker.entry.value = "nope"
    assert picker.alert.visible
    assert "invalid user id 'nope'" in picker.alert.object
    assert picker.value == ""
    user = uuid4()
    picker.entry.value = f"  {str(user).upper()}  "
    assert not picker.alert.visible
    assert picker.value == str(user)
    assert str(user) in picker.select.options.values()


def test_messages_quote_user_input_literally() -> None:
    picker = UserPicker()
    picker.entry.value = '<img src=x onerror="alert(1)">'
    assert "<img" not in picker.alert.object
    assert '&lt;img src=x onerror="alert(1)"&gt;' in picker.alert.object


def test_user_picker_lists_named_users_first_and_never_picks_by_itself() -> None:
    picker = UserPicker()
    other = UUID("00000000-0000-4000-8000-000000000001")
    picker.set_users([other, DEMO_USERS["bob"]], {DEMO_USERS["bob"]: "bob"})
    labels = list(picker.select.options)
    assert labels[0].startswith("—")  # the explicit "none" entry
    assert labels[1].startswith("bob · ")
    assert labels[2] == str(other)
    assert picker.value == ""


def test_stats_render_exact_values_and_warn_on_losses() -> None:
    from dashboard.state import Tick

    tick = Tick(
        changed=True,
        total=12345,
        counts={},
        new_rows=0,
        rate_points=(),
        events_per_second=4321.06,
        seconds_since_last=75.0,
        newest_event_id=None,
        gaps=0,
    )
    html = render_stats(tick, SubscriberStats(malformed=2, dropped=0), paused=True)
    assert '<span class="number">12,345</span>' in html
    assert "4,321.1" in html
    assert "1.2 min" in html
    assert 'class="card warn" data-stat="skipped"' in html
    assert 'class="card " data-stat="dropped"' in html
    assert "paused" in html


def test_category_counts_carry_machine_readable_values() -> None:
    html = render_category_counts({SSEEventCategory.AI: 1500})
    assert 'data-category="ai" data-count="1500"' in html
    assert 'data-category="security" data-count="0"' in html


def test_status_shows_no_credentials() -> None:
    backend = Backend.create("redis://admin:s3cret@db.example:6380/2")
    status = ConnectionStatus(ConnectionState.RECONNECTING, 3, 1, 0)
    html = render_status(backend.label, status)
    assert "s3cret" not in html
    assert "admin" not in html
    assert "db.example:6380/2" in html
    assert 'data-connection="reconnecting"' in html
    assert 'data-reconnects="3"' in html
    assert not backend.demo


async def test_backend_defaults(fake_redis: FakeAsyncRedis) -> None:
    embedded = Backend.create(None)
    assert embedded.demo
    assert "embedded" in embedded.label
    await embedded.aclose()
    shared = Backend.create(redis_client=fake_redis)
    assert not shared.demo
    assert not shared.owns_client
    assert shared.client is fake_redis


async def test_user_discovery_is_shared_and_cached(fake_redis: FakeAsyncRedis) -> None:
    from dashboard import backend as backend_module

    backend = Backend.create(redis_client=fake_redis)
    scans = 0
    scan = backend._scan_users

    async def counted_scan() -> list[UUID]:
        nonlocal scans
        scans += 1
        return await scan()

    backend._scan_users = counted_scan  # type: ignore[method-assign]
    publisher = RedisSSEPublisher(fake_redis, enable_retention=True)
    first, second = sorted([uuid4(), uuid4()], key=str)
    await publisher.publish(event(first, SSEEventCategory.AI))
    together = await asyncio.gather(*(backend.users() for _ in range(5)))
    assert together == [[first]] * 5
    assert scans == 1  # five sessions asking at once share one SCAN
    await publisher.publish(event(second, SSEEventCategory.AI))
    assert await backend.users() == [first]  # still cached
    assert scans == 1
    assert backend._users_at is not None
    backend._users_at -= backend_module.USERS_CACHE_SECONDS + 1
    assert await backend.users() == [first, second]
    assert scans == 2


_SESSION_STYLESHEETS = """
import asyncio, json
from bokeh.document import Document
from bokeh.models import ImportedStyleSheet
from panel.io.state import set_curdoc
from dashboard.backend import Backend
from dashboard.server import build_app

async def main():
    backend = Backend.create(None, demo=False)
    doc = Document()
    with set_curdoc(doc):
        build_app(backend)().server_doc(doc)
    sheets = [s for r in doc.roots for s in r.select({"type": ImportedStyleSheet})]
    print(json.dumps([str(s.url) for s in sheets]))

asyncio.run(main())
"""


def test_a_served_sessions_stylesheets_are_local_before_its_page_is_rendered() -> None:
    # Panel points stylesheet URLs at cdn.holoviz.org until it renders the page, and patches
    # only the models it then finds: on a busy server the page loaded its CSS from the CDN.
    # In its own interpreter: a session built outside a server leaves Panel's global state
    # (its periodic callbacks, its document) behind for every later dashboard in the process.
    done = subprocess.run(
        [sys.executable, "-c", _SESSION_STYLESHEETS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    urls = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(urls) > 10
    assert [u for u in urls if "://" in u] == []


# -- the Dashboard lifecycle --------------------------------------------------------------------


async def test_embedded_dashboard_is_alive_and_stops() -> None:
    dash = Dashboard(user_id=DEMO_USERS["alice"])
    try:
        assert dash.running
        assert dash.backend.demo_running
        await eventually(lambda: dash.state.total > 0 and dash.updates > 0, what="demo events")
    finally:
        await dash.aclose()
    assert not dash.backend.demo_running
    assert not dash.running


async def test_counts_filters_and_resubscription(fake_redis: FakeAsyncRedis) -> None:
    first, second = uuid4(), uuid4()
    publisher = RedisSSEPublisher(fake_redis, enable_retention=True)
    dash = Dashboard(redis_client=fake_redis, user_id=first)
    try:
        assert not dash.backend.demo_running
        await eventually(
            lambda: 'data-connection="connected"' in dash.views.status.object, what="live"
        )
        await publisher.publish_many(
            [event(first, SSEEventCategory.AI), event(first, SSEEventCategory.IMPORT)]
        )
        await eventually(lambda: dash.state.total == 2, what="two events")
        old_task = dash.live._consumer

        dash.param.update(user=str(second), categories="import")
        assert old_task is not None
        await asyncio.wait([old_task], timeout=5)
        assert old_task.cancelled()
        assert dash.state.total == 0  # a fresh view for the new selection
        assert dash.category_filter.value == ["import"]
        await eventually(
            lambda: connection_status(dash.backend.client).subscriptions == 1, what="one sub"
        )
        await publisher.publish_many(
            [
                event(second, SSEEventCategory.AI),
                event(second, SSEEventCategory.IMPORT),
                event(first, SSEEventCategory.IMPORT),
            ]
        )
        await eventually(lambda: dash.state.total == 1, what="the filtered event")
        await asyncio.sleep(0.3)
        assert dash.state.counts[SSEEventCategory.IMPORT] == 1
        assert dash.state.total == 1
        rows = dash.views.feed.table.value
        assert list(rows["category"]) == ["import"]
    finally:
        await dash.aclose()
    assert connection_status(dash.backend.client).subscriptions == 0


async def test_pause_freezes_the_view_but_keeps_counting(fake_redis: FakeAsyncRedis) -> None:
    user = uuid4()
    publisher = RedisSSEPublisher(fake_redis, enable_retention=True)
    dash = Dashboard(redis_client=fake_redis, user_id=user)
    try:
        await eventually(
            lambda: connection_status(dash.backend.client).subscriptions == 1, what="sub"
        )
        dash.pause.value = True
        assert dash.paused
        assert dash.pause.label == "Resume"
        await publisher.publish_many([event(user, SSEEventCategory.SECURITY) for _ in range(3)])
        await eventually(lambda: dash.state.total == 3, what="counted while paused")
        await asyncio.sleep(0.3)
        assert len(dash.views.feed.table.value) == 0  # the view did not move
        dash.pause.value = False
        await eventually(lambda: len(dash.views.feed.table.value) == 3, what="the view catching up")
        assert 'data-category="security" data-count="3"' in dash.views.category_counts.object
    finally:
        await dash.aclose()


async def test_an_invalid_user_is_explained_not_raised(fake_redis: FakeAsyncRedis) -> None:
    dash = Dashboard(redis_client=fake_redis, user_id="not-a-user")
    try:
        assert not dash.running
        assert dash.users.alert.visible
        assert "invalid user id 'not-a-user'" in dash.users.alert.object
        dash.user = str(uuid4())
        assert dash.running
        assert not dash.users.alert.visible
    finally:
        await dash.aclose()


# -- the replay panel ----------------------------------------------------------------------------


class FakeSource:
    def __init__(self, replay: Replay) -> None:
        self.result = replay
        self.calls: list[tuple[str, str, list[str] | None]] = []

    async def replay(
        self, user_id: UUID | str, last_event_id: UUID | str, categories: list[str] | None = None
    ) -> Replay:
        self.calls.append((str(user_id), str(last_event_id), categories))
        return self.result


async def test_replay_panel_validates_then_loads() -> None:
    user = uuid4()
    events = [event(user, SSEEventCategory.AI, n=1), event(user, SSEEventCategory.AI, n=2)]
    source = FakeSource(Replay(events, complete=False))
    panel = ReplayPanel(source)

    await panel._load()
    assert "Pick a user first" in panel.alert.object

    panel.user_id = str(user)
    panel.last_id.value = "123"
    await panel._load()
    assert "invalid event id '123'" in panel.alert.object
    assert source.calls == []

    last = uuid7()
    panel.last_id.value = str(last)
    panel.categories.value = ["ai"]
    await panel._load()
    assert not panel.alert.visible
    assert source.calls == [(str(user), str(last), ["ai"])]
    assert list(panel.table.value["event_id"]) == [str(e.event_id) for e in events]
    assert 'data-rows="2" data-complete="false"' in panel.summary.object
    assert not panel.download.disabled
    csv = panel._csv().getvalue().splitlines()
    assert len(csv) == 3
    assert csv[0].startswith("event_id,occurred_at,category,event_type,user_id")

    panel.user_id = str(uuid4())  # another user: the old result must not linger
    assert panel.table.value.empty
    assert panel.download.disabled
    assert "data-rows" not in panel.summary.object


def test_replay_field_follows_the_newest_id_until_the_user_chooses() -> None:
    panel = ReplayPanel(FakeSource(Replay([], complete=True)))
    first, second, chosen = str(uuid7()), str(uuid7()), str(uuid7())
    panel.offer_newest(first)
    assert panel.last_id.value == first
    panel.offer_newest(second)
    assert panel.last_id.value == second
    panel.use_event(chosen)  # a feed row was clicked
    assert not panel.follow.value
    panel.offer_newest(str(uuid7()))
    assert panel.last_id.value == chosen
    panel.follow.value = True
    panel.offer_newest(second)
    assert panel.last_id.value == second


@pytest.mark.parametrize("typed", ["0192f0c1-7c4e", "something"])
def test_replay_field_is_not_overwritten_while_typing(typed: str) -> None:
    panel = ReplayPanel(FakeSource(Replay([], complete=True)))
    panel.offer_newest(str(uuid7()))
    panel.last_id.value_input = typed
    newest = str(uuid7())
    panel.offer_newest(newest)
    assert panel.last_id.value != newest
