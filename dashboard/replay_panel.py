"""The replay panel: load what a client resuming after a ``Last-Event-ID`` would receive.

Loading is an async callback (the live view keeps updating meanwhile); the result is shown in
the one table form of events (:func:`sse_core.frames.events_to_frame`) and can be saved as CSV.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import DateFormatter
from panel.viewable import Viewer
from redis.exceptions import RedisError

from dashboard import icons, panes
from dashboard.controls import hidden_alert, show_alert
from dashboard.palette import category_color
from dashboard.plain_text import plain
from dashboard.tables import ReadOnlyTabulator
from sse_core import VALID_CATEGORIES, Replay, parse_event_id
from sse_core.frames import events_to_frame

log = logging.getLogger(__name__)

AUTOFILL_MEMORY = 64  # ~13 s of ids at the dashboard's 5 flushes/s; echoes return in < 1 s

SUMMARY_CSS = """
.summary { font-size: 13px; line-height: 1.6; }
.ok { color: #73BF69; font-weight: 600; }
.partial { color: #FF9830; font-weight: 600; }
code { font-size: 12px; }
"""


INTRO = (
    '<div class="summary">Enter a Last-Event-ID and load what a client resuming after it '
    "would receive.</div>"
)


class ReplaySource(Protocol):
    """What the panel needs from a subscriber (``RedisSSESubscriber`` provides it)."""

    async def replay(
        self,
        user_id: UUID | str,
        last_event_id: UUID | str,
        categories: list[str] | None = None,
    ) -> Replay: ...


def _category_style(value: object) -> str:
    return f"color: {category_color(str(value))}; font-weight: 600"


def render_summary(
    frame: pd.DataFrame, complete: bool, last_event_id: str, *, includes_broadcasts: bool = True
) -> str:
    rows = len(frame)
    noun = "event" if rows == 1 else "events"
    if complete:
        verdict = '<span class="ok">&#10003; complete</span>: nothing missed is lost'
    else:
        verdict = (
            '<span class="partial">&#9888; incomplete</span>: the id is older than what '
            "retention keeps (or the stream was reset), so events may be missing before these"
        )
    if not includes_broadcasts:  # SSE_KEY_LAYOUT=dashtam: the seed never retains broadcasts
        verdict += (
            " &middot; broadcasts are not retained in this key layout: any sent meanwhile are "
            "not listed"
        )
    return (
        f'<div class="summary" data-rows="{rows}" data-complete="{str(complete).lower()}">'
        f"<b>{rows:,}</b> {noun} after <code>{plain(last_event_id)}</code> &middot; "
        f"{verdict}</div>"
    )


class ReplayPanel(Viewer):
    """Last-Event-ID field, category filter, load button, result table and CSV download."""

    user_id = param.String(default="", doc="Whose retained events to replay.")

    def __init__(
        self,
        source: ReplaySource,
        *,
        on_loaded: Callable[[bool], None] | None = None,
        **params: Any,
    ) -> None:
        """``on_loaded(complete)`` is told about every replay loaded (the server's metrics)."""
        super().__init__(**params)
        self._source = source
        self._on_loaded = on_loaded
        # Ids this panel filled in itself, newest last. In a notebook the browser echoes each
        # one back a moment later, when a newer one may already be shown; those echoes are not
        # the user's edits.
        self._autofilled: deque[str] = deque(maxlen=AUTOFILL_MEMORY)
        self._autofilling = False
        self._chosen = ""  # the id the user picked (feed click or typed), while not following
        self.last_id = pn.widgets.TextInput(
            label="Last-Event-ID",
            placeholder="an event id (UUIDv7); click a feed row to use its id",
            sizing_mode="stretch_width",
            css_classes=["replay-last-id"],
        )
        self.follow = pn.widgets.Checkbox(label="follow the newest event id", value=True)
        self.categories = pn.widgets.MultiChoice(
            label="Categories",
            options=list(VALID_CATEGORIES),
            placeholder="All categories",
            sizing_mode="stretch_width",
        )
        self.load = pn.widgets.Button(
            label="Load missed events", color="primary", icon=icons.HISTORY, width=190
        )
        self.progress = pn.indicators.Progress(
            active=True, visible=False, height=6, sizing_mode="stretch_width"
        )
        self.alert = hidden_alert("replay-error")
        self.summary = panes.HTML(
            INTRO,
            stylesheets=[SUMMARY_CSS],
            sizing_mode="stretch_width",
            css_classes=["replay-summary"],
        )
        self.table = ReadOnlyTabulator(
            events_to_frame([]),
            pagination="remote",
            page_size=10,
            show_index=False,
            sizing_mode="stretch_width",
            layout="fit_data_fill",
            formatters={"occurred_at": DateFormatter(format="%Y-%m-%d %H:%M:%S.%3N")},
            css_classes=["replay-table"],
        )
        if self.table.style is not None:
            self.table.style.map(_category_style, subset=["category"])
        self.download = pn.widgets.FileDownload(
            callback=self._csv,
            filename="replay.csv",
            label="Download CSV",
            disabled=True,
            color="default",
            icon=icons.DOWNLOAD,
            width=160,
        )
        self.load.on_click(self._load)
        self.last_id.param.watch(self._on_edit, "value")
        self.follow.param.watch(self._on_follow, "value")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.Row(self.last_id, self.categories, sizing_mode="stretch_width", align="end"),
            pn.Row(self.follow, pn.layout.HSpacer(), self.load, self.download, align="center"),
            self.progress,
            self.alert,
            self.summary,
            self.table,
            sizing_mode="stretch_width",
        )

    @param.depends("user_id", watch=True)
    def _on_user(self) -> None:
        """Another user: the previous result and the followed id no longer apply."""
        self.show_error(None)
        self.table.value = events_to_frame([])
        self.summary.object = INTRO
        self.download.disabled = True
        self.follow.value = True

    # -- the Last-Event-ID field --------------------------------------------------------------

    def offer_newest(self, event_id: str | None) -> None:
        """Prefill the field with the newest id seen, unless the user chose or is typing one."""
        if not event_id or not self.follow.value or event_id == self.last_id.value:
            return
        typed = self.last_id.value_input
        if typed not in (None, "", self.last_id.value) and typed not in self._autofilled:
            return  # the user is typing an id
        self._autofilled.append(event_id)
        self._autofilling = True
        try:
            self.last_id.value = event_id
        finally:
            self._autofilling = False

    def use_event(self, event_id: str) -> None:
        """A feed row was clicked: replay from that event on (and stop following)."""
        self._chosen = event_id
        self.follow.value = False
        self.last_id.value = event_id

    def _on_edit(self, event: param.parameterized.Event) -> None:
        if self._autofilling or event.new == self._chosen:
            return
        if event.new in self._autofilled:  # a notebook's late echo of an id filled in earlier
            if not self.follow.value and self._chosen:
                self.last_id.value = self._chosen  # it must not replace the user's choice
            return
        self._chosen = event.new  # typed by the user
        self.follow.value = False

    def _on_follow(self, event: param.parameterized.Event) -> None:
        if event.new:
            self._chosen = ""

    # -- loading ------------------------------------------------------------------------------

    def show_error(self, message: str | None) -> None:
        show_alert(self.alert, message)

    async def load_missed(
        self, last_event_id: str | None = None, categories: list[str] | None = None
    ) -> pd.DataFrame:
        """What "Load missed events" does, from code (notebooks): returns the table shown.

        Problems are shown in the panel's alert, as for a click; the table is then unchanged.
        """
        if last_event_id is not None:
            self.use_event(str(last_event_id))
        if categories is not None:
            self.categories.value = list(categories)
        await self._load()
        frame: pd.DataFrame = self.table.value
        return frame

    async def _load(self, _event: object = None) -> None:
        self.show_error(None)
        text = (self.last_id.value_input or self.last_id.value or "").strip()
        if not self.user_id:
            self.show_error("Pick a user first: replay reads that user's retained events.")
            return
        if not text:
            self.show_error("Enter a Last-Event-ID (or click a row in the live feed).")
            return
        try:
            last_event_id = parse_event_id(text)
        except ValueError as exc:
            self.show_error(str(exc))
            return
        categories = list(self.categories.value) or None
        self.load.loading = True
        self.progress.visible = True
        try:
            replay = await self._source.replay(self.user_id, last_event_id, categories)
            frame = await asyncio.to_thread(events_to_frame, replay.events)
        except (RedisError, OSError) as exc:
            log.warning("replay failed: %s", exc)
            self.show_error(f"Redis is unreachable ({exc}); try again once it is back.")
            return
        finally:
            self.load.loading = False
            self.progress.visible = False
        if self._on_loaded is not None:
            self._on_loaded(replay.complete)
        with pn.io.hold():
            self.table.value = frame
            self.summary.object = render_summary(
                frame,
                replay.complete,
                str(last_event_id),
                includes_broadcasts=replay.includes_broadcasts,
            )
            self.download.filename = f"replay_{self.user_id[:8]}_after_{last_event_id}.csv"
            self.download.disabled = False

    def _csv(self) -> io.StringIO:
        return io.StringIO(self.table.value.to_csv(index=False))
