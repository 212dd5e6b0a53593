"""The live part of the page, drawn from :class:`~dashboard.state.LiveState`.

Bokeh models are created here and changed only through :meth:`LiveViews.apply`, which the app
calls from its periodic flush under ``pn.io.hold()``: one batched document update per tick.
The feed (a Panel Tabulator) and the HTML panes are also updated only there; the panes carry
``data-*`` attributes so tests and scripts can read exact values.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, DataRange1d, FactorRange, HoverTool, Range1d
from bokeh.models.annotations import LabelSet
from bokeh.models.widgets.tables import HTMLTemplateFormatter
from bokeh.plotting import figure

from dashboard.palette import CATEGORIES, CATEGORY_COLORS, category_color
from dashboard.state import FeedRow, Frame, LiveState, RatePoint
from sse_core.categories import SSEEventCategory
from sse_core.hub import ConnectionState, ConnectionStatus
from sse_core.subscriber import SubscriberStats

NAMES: tuple[str, ...] = tuple(c.value for c in CATEGORIES)
MUTED_TEXT = "#9fa7b3"
CHART_HEIGHT = 270

CARD_CSS = """
:host { width: 100%; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { flex: 1 1 120px; padding: 10px 14px; border-radius: 6px;
        background: rgba(128, 128, 128, 0.08); border: 1px solid rgba(128, 128, 128, 0.22); }
.card .label { font-size: 11px; letter-spacing: .06em; text-transform: uppercase; opacity: .7; }
.card .value { font-size: 26px; font-weight: 600; margin-top: 2px;
               font-variant-numeric: tabular-nums; white-space: nowrap; }
.card .unit { font-size: 13px; font-weight: 400; opacity: .7; margin-left: 3px; }
.warn .value { color: #FF9830; }
.bad .value { color: #F2495C; }
.chips { display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 13px; }
.chip { display: inline-flex; align-items: center; gap: 6px; white-space: nowrap; }
.chip .swatch { width: 10px; height: 10px; border-radius: 2px; display: inline-block; }
.chip .count { font-weight: 600; font-variant-numeric: tabular-nums; }
.status { font-size: 13px; line-height: 1.7; }
.status .row { display: flex; justify-content: space-between; gap: 8px; }
.status .key { opacity: .7; }
.status code { font-size: 12px; word-break: break-all; }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 5px; }
.badge { font-size: 11px; padding: 1px 7px; border-radius: 9px; margin-left: 8px;
         background: rgba(255, 152, 48, .18); color: #FF9830; vertical-align: middle; }
"""

STATE_COLORS: Mapping[ConnectionState, str] = {
    ConnectionState.CONNECTED: "#73BF69",
    ConnectionState.CONNECTING: "#FADE2A",
    ConnectionState.RECONNECTING: "#FF9830",
    ConnectionState.IDLE: "#8E8E8E",
}


def _html_pane(text: str = "", **params: object) -> pn.pane.HTML:
    return pn.pane.HTML(text, stylesheets=[CARD_CSS], sizing_mode="stretch_width", **params)


# -- plain renderers (pure functions of state; tested without a browser) ----------------------


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render_stats(frame: Frame | None, stats: SubscriberStats | None, *, paused: bool) -> str:
    total = frame.total if frame else 0
    rate = frame.events_per_second if frame else 0.0
    age = frame.seconds_since_last if frame else None
    skipped = stats.malformed if stats else 0
    dropped = stats.dropped if stats else 0
    gaps = frame.gaps if frame else 0
    badge = '<span class="badge">paused</span>' if paused else ""
    cards = [
        ("total", f"Total events{badge}", f"{total:,}", "", ""),
        ("rate", "Events/s", f"{rate:,.1f}", "/s", ""),
        ("age", "Since last event", format_age(age), "", ""),
        ("skipped", "Skipped (malformed)", f"{skipped:,}", "", "warn" if skipped else ""),
        ("dropped", "Dropped", f"{dropped:,}", "", "bad" if dropped else ""),
        ("gaps", "Gaps", f"{gaps:,}", "", "warn" if gaps else ""),
    ]
    body = "".join(
        f'<div class="card {tone}" data-stat="{key}">'
        f'<div class="label">{label}</div>'
        f'<div class="value"><span class="number">{value}</span>'
        f"{f'<span class=unit>{unit}</span>' if unit else ''}</div></div>"
        for key, label, value, unit, tone in cards
    )
    return f'<div class="cards">{body}</div>'


def render_category_counts(counts: Mapping[SSEEventCategory, int]) -> str:
    chips = "".join(
        f'<span class="chip" data-category="{c.value}" data-count="{counts.get(c, 0)}">'
        f'<span class="swatch" style="background:{CATEGORY_COLORS[c]}"></span>{c.value}'
        f'<span class="count">{counts.get(c, 0):,}</span></span>'
        for c in CATEGORIES
    )
    return f'<div class="chips">{chips}</div>'


def render_status(redis_label: str, status: ConnectionStatus | None) -> str:
    state = status.state if status else ConnectionState.IDLE
    state_text = {ConnectionState.IDLE: "idle (no subscription)"}.get(state, state.value)
    rows = [
        ("Redis", f"<code>{html.escape(redis_label)}</code>"),
        (
            "Pub/sub",
            f'<span data-connection="{state.value}"><span class="dot" '
            f'style="background:{STATE_COLORS[state]}"></span>{state_text}</span>',
        ),
        (
            "Reconnects",
            f'<span data-reconnects="{status.reconnects if status else 0}">'
            f"{status.reconnects if status else 0}</span>",
        ),
        ("Live subscriptions (server)", str(status.subscriptions if status else 0)),
    ]
    body = "".join(
        f'<div class="row"><span class="key">{key}</span><span>{value}</span></div>'
        for key, value in rows
    )
    return f'<div class="status">{body}</div>'


# -- Bokeh figures --------------------------------------------------------------------------


class CountsChart:
    """Horizontal bars: events per category since the view subscribed."""

    def __init__(self, label_color: str = MUTED_TEXT) -> None:
        self.source = ColumnDataSource(self._columns({}))
        fig = figure(
            title="Events by category",
            y_range=FactorRange(factors=list(reversed(NAMES))),
            x_range=DataRange1d(start=0, range_padding=0.15),
            height=CHART_HEIGHT,
            sizing_mode="stretch_width",
            toolbar_location=None,
            tools="",
            x_axis_label="events since subscribed",
        )
        fig.hbar(y="category", right="count", height=0.72, color="color", source=self.source)
        fig.add_layout(
            LabelSet(
                x="count",
                y="category",
                text="label",
                source=self.source,
                x_offset=6,
                y_offset=-7,
                text_font_size="12px",
                text_color=label_color,
            )
        )
        fig.add_tools(HoverTool(tooltips=[("category", "@category"), ("events", "@count")]))
        fig.ygrid.grid_line_color = None
        fig.outline_line_color = None
        self.figure = fig

    @staticmethod
    def _columns(counts: Mapping[SSEEventCategory, int]) -> dict[str, Any]:
        values = [counts.get(c, 0) for c in CATEGORIES]
        return {
            "category": list(NAMES),
            "count": list(values),
            "label": [f"{v:,}" for v in values],
            "color": [CATEGORY_COLORS[c] for c in CATEGORIES],
        }

    def show(self, counts: Mapping[SSEEventCategory, int]) -> None:
        self.source.data = self._columns(counts)


class RatesChart:
    """One line per category: events/s per closed bucket over the chosen time window."""

    def __init__(self, history_points: int, window_seconds: float) -> None:
        self.rollover = history_points
        self.window_ms = window_seconds * 1000.0
        self.source = ColumnDataSource(self._columns(()))
        self.x_range = Range1d(start=0, end=1)
        fig = figure(
            title="Events/s by category",
            x_axis_type="datetime",
            x_range=self.x_range,
            height=CHART_HEIGHT,
            sizing_mode="stretch_width",
            toolbar_location=None,
            tools="",
        )
        renderers: list[Any] = [
            fig.line(
                "time",
                name,
                source=self.source,
                color=CATEGORY_COLORS[c],
                line_width=2,
                legend_label=name,
            )
            for c, name in zip(CATEGORIES, NAMES, strict=True)
        ]
        fig.add_tools(
            HoverTool(
                renderers=renderers[:1],
                mode="vline",
                tooltips=[("time", "@time{%H:%M:%S}"), *((n, f"@{{{n}}}{{0.0}}/s") for n in NAMES)],
                formatters={"@time": "datetime"},
            )
        )
        fig.y_range = DataRange1d(start=0)
        fig.add_layout(fig.legend[0], "below")  # below the plot, like a Grafana legend
        fig.legend.location = "center"
        fig.legend.orientation = "horizontal"
        fig.legend.click_policy = "hide"
        fig.legend.background_fill_alpha = 0.0
        fig.legend.border_line_alpha = 0.0
        fig.legend.label_text_font_size = "11px"
        fig.legend.spacing = 8
        fig.outline_line_color = None
        self.figure = fig
        self._last_ms: float | None = None

    @staticmethod
    def _columns(points: Iterable[RatePoint]) -> dict[str, Any]:
        points = list(points)
        columns: dict[str, Any] = {"time": [p.time_ms for p in points]}
        for index, name in enumerate(NAMES):
            columns[name] = [p.rates[index] for p in points]
        return columns

    def append(self, points: Sequence[RatePoint]) -> None:
        if points:
            self.source.stream(self._columns(points), rollover=self.rollover)
            self._follow(points[-1].time_ms)

    def reset(self, points: Sequence[RatePoint], now_ms: float) -> None:
        self.source.data = self._columns(points)
        self._follow(points[-1].time_ms if points else now_ms)

    def set_window(self, seconds: float) -> None:
        self.window_ms = seconds * 1000.0
        if self._last_ms is not None:
            self._follow(self._last_ms)

    def _follow(self, end_ms: float) -> None:
        self._last_ms = end_ms
        self.x_range.update(start=end_ms - self.window_ms, end=end_ms)


class FeedTable:
    """The most recent events, newest first; rows keep their event id for the replay panel.

    A Tabulator, not a Bokeh DataTable: Bokeh 3.9's DataTable does not redraw when its data is
    replaced by rows of the same count, which is every tick once the feed is full.
    """

    FIELDS = ("time", "category", "event_type", "summary", "event_id", "color")

    def __init__(self, height: int = 330) -> None:
        chip = HTMLTemplateFormatter(
            template='<span style="color:<%= color %>;font-weight:600">&#9679; <%= value %></span>'
        )
        self.table = pn.widgets.Tabulator(
            self._frame([]),
            show_index=False,
            disabled=True,
            selectable=False,
            sortable=False,
            hidden_columns=["color"],
            formatters={"category": chip},
            titles={
                "time": "time (UTC)",
                "event_type": "type",
                "summary": "data",
                "event_id": "event id",
            },
            widths={"time": 110, "category": 120, "event_type": 220, "event_id": 300},
            layout="fit_columns",
            height=height,
            sizing_mode="stretch_width",
            css_classes=["live-feed"],
        )

    def _frame(self, rows: Iterable[FeedRow]) -> pd.DataFrame:
        rows = list(rows)
        columns = {
            "time": [r.time for r in rows],
            "category": [r.category for r in rows],
            "event_type": [r.event_type for r in rows],
            "summary": [r.summary for r in rows],
            "event_id": [r.event_id for r in rows],
            "color": [category_color(r.category) for r in rows],
        }
        # Explicit text dtype: an empty column would be float, and Tabulator keeps the first
        # frame's formatters (showing NaN for every later string).
        return pd.DataFrame({k: pd.Series(v, dtype=str) for k, v in columns.items()})

    def show(self, rows: Iterable[FeedRow]) -> None:
        self.table.value = self._frame(rows)

    def event_id_at(self, index: int) -> str | None:
        ids = self.table.value["event_id"]
        if 0 <= index < len(ids) and ids.iloc[index]:
            return str(ids.iloc[index])
        return None


# -- the live area as one unit --------------------------------------------------------------


class LiveViews:
    """Every live-updating element of the page, applied from one frame at a time."""

    def __init__(self, *, history_points: int, window_seconds: float) -> None:
        self.counts_chart = CountsChart()
        self.rates_chart = RatesChart(history_points, window_seconds)
        self.feed = FeedTable()
        self.stats = _html_pane(render_stats(None, None, paused=False), name="stats")
        self.category_counts = _html_pane(render_category_counts({}), name="category-counts")
        self.status = _html_pane("", name="connection-status")
        self._status_html = ""
        self._pending_window: float | None = None

    def set_window(self, seconds: float) -> None:
        """Applied at the next :meth:`apply` (Bokeh models change only from the flush)."""
        self._pending_window = seconds

    def show_status(self, redis_label: str, status: ConnectionStatus | None) -> None:
        text = render_status(redis_label, status)
        if text != self._status_html:
            self._status_html = self.status.object = text

    def apply(
        self,
        frame: Frame,
        state: LiveState,
        stats: SubscriberStats | None,
        *,
        full: bool,
        paused: bool,
        now_ms: float,
    ) -> None:
        """One batch of changes; ``full`` redraws from ``state`` (new subscription, resume)."""
        if self._pending_window is not None:
            self.rates_chart.set_window(self._pending_window)
            self._pending_window = None
        self.stats.object = render_stats(frame, stats, paused=paused)
        if paused:
            return
        if full:
            self.rates_chart.reset(list(state.rate_history), now_ms)
        else:
            self.rates_chart.append(frame.rate_points)
        if full or frame.changed:
            self.counts_chart.show(frame.counts)
            self.category_counts.object = render_category_counts(frame.counts)
            self.feed.show(state.feed)
