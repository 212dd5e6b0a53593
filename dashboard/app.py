"""The dashboard: one live view of one user's event stream, for a browser session or a notebook.

Lifecycle (rules learned from Panel):

* one consumer task per view: it iterates ``RedisSSESubscriber.stream(...)`` and only calls
  :meth:`LiveState.add`; switching user or categories cancels it and starts a fresh one;
* one periodic callback (:data:`FLUSH_MS`) drains the state into ONE batched document update
  under ``pn.io.hold()``; raw Bokeh models are changed only there;
* in a server session both start from ``pn.state.onload`` and stop in
  ``pn.state.on_session_destroyed``; a notebook has no session end, so call :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import panel as pn
import param
from panel.viewable import Viewer
from redis.exceptions import RedisError

from dashboard import icons, page
from dashboard.backend import Backend
from dashboard.controls import (
    UserPicker,
    format_category_query,
    hidden_alert,
    parse_category_query,
    show_alert,
)
from dashboard.errors import install_exception_handler
from dashboard.inspector import Inspector
from dashboard.live_stream import LiveStream
from dashboard.replay_panel import ReplayPanel
from dashboard.state import CATEGORIES, LiveState
from dashboard.views import LiveViews
from sse_core import (
    SSEEventType,
    SSESettings,
    connection_status,
    parse_user_id,
)
from sse_core.connection import RedisClient

log = logging.getLogger(__name__)

FLUSH_MS = 200
USER_REFRESH_MS = 10_000
FEED_ROWS = 50  # shown
FEED_KEEP = 1_000  # kept for search and the inspector
WINDOWS: dict[str, int] = {"1 minute": 60, "5 minutes": 300, "15 minutes": 900}
DEFAULT_WINDOW = 60


def _in_server_session() -> bool:
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


class Dashboard(Viewer):
    """Live counts, rates, feed and replay for one user; ``Dashboard()`` alone shows the demo.

    ``redis_url=None`` (and no ``SSE_REDIS_URL``) uses the embedded in-process fakeredis and
    starts demo traffic, so a notebook cell shows a living dashboard with no server at all.
    Pass ``redis_client=`` to share a notebook's own client instead (no demo traffic then;
    ``demo=True`` forces it on). In a notebook run ``pn.extension("tabulator")`` first, display
    the object, and call :meth:`stop` (or ``await aclose()``) when done: a notebook has no
    session end to do it for you.
    """

    user = param.String(default="", doc="Selected user id; synced with ?user= in a server.")
    categories = param.String(
        default="", doc="Comma-separated category filter, '' for all; synced with ?categories=."
    )
    paused = param.Boolean(default=False, doc="Freeze the view; counting goes on meanwhile.")
    window = param.Integer(
        default=DEFAULT_WINDOW,
        doc="Seconds the view covers (back-filled from retention), one of WINDOWS; ?window=.",
    )

    def __init__(
        self,
        redis_url: str | None = None,
        user_id: UUID | str | None = None,
        *,
        redis_client: RedisClient | None = None,
        categories: Sequence[str] | None = None,
        settings: SSESettings | None = None,
        demo: bool | None = None,
        backend: Backend | None = None,
        **params: Any,
    ) -> None:
        if user_id is not None:
            params["user"] = str(user_id)
        if categories is not None:
            params["categories"] = ",".join(categories)
        super().__init__(**params)
        install_exception_handler()  # a failing browser callback must not freeze a notebook
        self._owns_backend = backend is None
        self.backend = backend or Backend.create(
            redis_url, redis_client=redis_client, settings=settings, demo=demo
        )
        self._probe = self.backend.subscriber()  # status, user discovery, replay
        self._telemetry = self.backend.telemetry
        self.live = LiveStream(
            self._telemetry, feed_rows=FEED_ROWS, keep=FEED_KEEP, window=self.window
        )
        self._shown: LiveState | None = None
        self._callbacks: list[pn.io.PeriodicCallback] = []
        self._started = False
        self._discovery: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the one start() ran on
        self.updates = 0  # document updates applied: the "UI updates per second" figure

        self.views = LiveViews(
            history_points=self.live.state.history_points,
            window_seconds=self.window,
            feed_rows=FEED_ROWS,
        )
        self.users = UserPicker(value=self.user)
        self.users.set_users(list(self.backend.user_names), self.backend.user_names)
        self.category_filter = pn.widgets.MultiChoice(
            label="Categories",
            options=[c.value for c in CATEGORIES],
            placeholder="All categories",
            sizing_mode="stretch_width",
            css_classes=["category-filter"],
        )
        self.window_select = pn.widgets.Select(
            label="Time window",
            options=WINDOWS,
            value=self.window,
            sizing_mode="stretch_width",
            css_classes=["window-select"],
        )
        # from_param: the widget and the parameter are one value, both ways.
        self.pause = pn.widgets.Toggle.from_param(
            self.param.paused,
            label="Pause",
            icon=icons.PAUSE,
            color="default",
            sizing_mode="stretch_width",
        )
        self.type_filter = pn.widgets.MultiChoice(
            name="Event types",
            options=[t.value for t in SSEEventType],
            placeholder="All event types",
            sizing_mode="stretch_width",
            css_classes=["type-filter"],
        )
        self.search = pn.widgets.TextInput(
            name="Search",
            placeholder="text in the type, id or payload",
            sizing_mode="stretch_width",
            css_classes=["feed-search"],
        )
        self.inspector = Inspector()
        self.notice = hidden_alert("notice", "warning")
        self.category_alert = hidden_alert("category-error")
        self.replay = ReplayPanel(
            self._probe,
            user_id=self._user_id_or_empty(),
            on_loaded=self._telemetry.count_replay,
        )
        self._link_widgets()
        self._apply_categories_to_widget()

        if _in_server_session():
            if pn.state.location is not None:
                pn.state.location.sync(
                    self,
                    {"user": "user", "categories": "categories", "window": "window"},
                    on_error=self._on_bad_query,
                )
            self._pick_default_user()
            pn.state.onload(lambda: self._on_loop(self.start))
            pn.state.on_session_destroyed(lambda _context: self._on_loop(self.stop))
        else:
            self._pick_default_user()
            with contextlib.suppress(RuntimeError):  # no running loop: call start() later
                asyncio.get_running_loop()
                self.start()

    # -- composition ---------------------------------------------------------------------------

    # -- composition (dashboard/page.py) --------------------------------------------------------

    def sidebar(self) -> list[Any]:
        return page.sidebar(self)

    def main(self) -> list[Any]:
        return page.main(self)

    def __panel__(self) -> pn.viewable.Viewable:
        """Inline form (notebooks): sidebar on the left, main area on the right."""
        return page.inline(self)

    def template(self, title: str = "ssewatch") -> pn.template.FastListTemplate:
        """The full-page form the server shows."""
        return page.full_page(self, title)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Begin consuming and flushing (idempotent); needs the event loop to be running."""
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._telemetry.sessions += 1
        self._telemetry.attach(self._probe)
        if self._owns_backend:
            self.backend.start_demo()
        if _in_server_session() and pn.state.location is not None:
            # The browser reports its own URL when it connects; write the selection back now,
            # so a default choice (or a corrected one) becomes a shareable link.
            query: dict[str, Any] = {
                "user": self.user,
                "categories": self.categories,
                "window": self.window,
            }
            pn.state.location.update_query(**query)
        self._callbacks = [
            # A coroutine, so that it runs on the loop under Bokeh 3.10 too (see _on_loop).
            pn.state.add_periodic_callback(self._flush_on_loop, period=FLUSH_MS),  # type: ignore[arg-type]
            # Panel awaits coroutine callbacks; its annotation only lists plain ones.
            pn.state.add_periodic_callback(
                self._refresh_users,  # type: ignore[arg-type]
                period=USER_REFRESH_MS,
            ),
        ]
        self._discovery = asyncio.get_running_loop().create_task(self._refresh_users())
        self._resubscribe()

    def stop(self) -> None:
        """Stop the consumer, the callbacks and (if this view owns it) the demo and client.

        Returns at once; the subscription is released a moment later. ``await aclose()`` to
        wait for that.
        """
        if self._started:
            self._telemetry.sessions -= 1
            self._telemetry.retire(self._probe)
        self._started = False
        for callback in self._callbacks:
            callback.stop()
        self._callbacks = []
        self.live.cancel()
        if self._discovery is not None:
            self._discovery.cancel()
        if self._owns_backend and self._closing is None:
            with contextlib.suppress(RuntimeError):
                self._closing = asyncio.get_running_loop().create_task(self.backend.aclose())

    async def aclose(self) -> None:
        """:meth:`stop`, then wait until the subscription and (owned) client are released."""
        self.stop()
        await self.live.aclose()
        if self._closing is not None:
            await asyncio.gather(self._closing, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self.live.running

    @property
    def state(self) -> LiveState:
        return self.live.state

    # -- selection ------------------------------------------------------------------------------

    def _link_widgets(self) -> None:
        self.users.param.watch(lambda e: setattr(self, "user", e.new), "value")
        self.category_filter.param.watch(self._on_category_widget, "value")
        self.window_select.param.watch(lambda e: setattr(self, "window", e.new), "value")
        self.views.feed.table.on_click(self._on_feed_click)
        self.type_filter.param.watch(self._on_feed_filter, "value")
        self.search.param.watch(self._on_feed_filter, "value_input")

    def _on_category_widget(self, event: param.parameterized.Event) -> None:
        self.categories = format_category_query(event.new)

    def _apply_categories_to_widget(self) -> None:
        names, error = parse_category_query(self.categories)
        show_alert(self.category_alert, error)
        if list(self.category_filter.value) != names:
            self.category_filter.value = names

    @param.depends("user", watch=True)
    def _on_user(self) -> None:
        if self.users.value != self.user:
            self.users.value = self.user
        self.replay.user_id = self._user_id_or_empty()
        self._resubscribe()

    @param.depends("categories", watch=True)
    def _on_categories(self) -> None:
        self._apply_categories_to_widget()
        self._resubscribe()

    @param.depends("window", watch=True)
    def _on_window(self) -> None:
        if self.window not in WINDOWS.values():
            allowed = ", ".join(str(v) for v in WINDOWS.values())
            self.users.show_error(f"Ignored window={self.window}: choose one of {allowed} (s).")
            self.window = DEFAULT_WINDOW
            return
        self.window_select.value = self.window
        self._resubscribe()  # back-fill the new window from retention

    @param.depends("paused", watch=True)
    def _on_paused(self) -> None:
        self.pause.param.update(
            label="Resume" if self.paused else "Pause",
            icon=icons.PLAY if self.paused else icons.PAUSE,
            color="warning" if self.paused else "default",
        )
        if not self.paused:
            self._shown = None  # redraw everything counted while paused

    def _on_bad_query(self, values: dict[str, Any]) -> None:
        self.users.show_error(f"Ignored invalid URL query values: {values}")

    def _on_feed_click(self, event: Any) -> None:
        row = self.views.feed.row_at(event.row)
        if row is None or row.event is None:
            return
        self.inspector.inspect(row.event)
        self.replay.use_event(row.event_id)

    def _on_feed_filter(self, _event: object = None) -> None:
        self.views.feed.set_filter(self.type_filter.value, self.search.value_input or "")
        self.views.refilter()

    def _pick_default_user(self) -> None:
        """Open on the first known user (the demo's busiest) when none was asked for."""
        if not self.user and self.users.users:
            self.user = str(self.users.users[0])

    def _user_id_or_empty(self) -> str:
        try:
            return str(parse_user_id(self.user)) if self.user else ""
        except ValueError:
            return ""

    # -- the subscription -----------------------------------------------------------------

    def _on_loop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the session's event loop: now if this is it, else soon after.

        Bokeh 3.10 (Panel 1.10, Python 3.12+) runs a session's document callbacks (onload,
        widget watchers, next-tick and periodic callbacks) on a worker thread while holding the
        document lock; only a coroutine such a callback returns continues on the loop. Tasks,
        the live state and the Redis client belong to the loop, so from a thread the callback
        goes to the document's next tick as a coroutine (on the loop, with the lock), or, once
        the session's document is gone, straight to the loop this view started on.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            doc = pn.state.curdoc
            if doc is not None and doc.session_context is not None:

                async def on_the_loop() -> None:
                    callback()

                doc.add_next_tick_callback(on_the_loop)  # type: ignore[arg-type]  # Bokeh awaits it
            elif self._loop is not None:
                self._loop.call_soon_threadsafe(callback)
            else:
                raise
            return
        callback()

    def _resubscribe(self) -> None:
        """Cancel the current subscription and start one for the current selection."""
        self._on_loop(self._subscribe_to_selection)

    def _subscribe_to_selection(self) -> None:
        if not self._started:
            return
        self.live.reset(self.window)
        if not self.user:
            return
        try:
            user_id = parse_user_id(self.user)
        except ValueError as exc:
            self.users.show_error(str(exc))
            return
        self.users.show_error(None)
        names, _ = parse_category_query(self.categories)
        self.live.start(self.backend.subscriber(), user_id, names or None)

    # -- the periodic flush -----------------------------------------------------------------

    async def _flush_on_loop(self) -> None:
        self._flush()

    def _flush(self) -> None:
        """Drain the state and apply ONE batched update; the only place Bokeh models change."""
        state = self.live.state
        tick = state.drain()
        self._telemetry.count_delivered(tick.added)
        subscriber = self.live.subscriber
        status = connection_status(self.backend.client)
        full = state is not self._shown
        with pn.io.hold():
            self.views.show_status(self.backend.label, status)
            self._show_notice(status.state.value)
            self.views.apply(
                tick,
                state,
                subscriber.stats if subscriber else None,
                full=full,
                paused=self.paused,
                now_ms=time.time() * 1000.0,
                retention=self.backend.settings.enable_retention,
            )
            if not self.paused:
                self._shown = state
                self.replay.offer_newest(tick.newest_event_id)
        self.updates += 1

    def _show_notice(self, connection: str) -> None:
        if self.live.failure:
            text = self.live.failure
        elif connection in ("reconnecting", "connecting"):
            text = (
                f"Redis ({self.backend.label}) is unreachable; reconnecting. The view resumes "
                "by itself and replays what it missed from retention."
            )
        elif not self.user:
            text = "Pick a user in the sidebar (or open a link with ?user=<uuid>)."
        else:
            text = ""
        show_alert(self.notice, text)

    async def _refresh_users(self) -> None:
        try:
            found = await self.backend.users()
        except (RedisError, OSError) as exc:
            log.info("user discovery failed: %s", exc)
            return
        names = self.backend.user_names
        self.users.set_users([*names, *found], names)
        self._pick_default_user()
