"""The live part of the page, drawn from :class:`~dashboard.state.LiveState`.

Bokeh models are created here and changed only through :meth:`LiveViews.apply`, which the app
calls from its periodic flush under ``pn.io.hold()``: one batched document update per tick.
The feed (a Panel Tabulator) and the HTML panes are also updated only there; the panes carry
``data-*`` attributes so tests and scripts can read exact values.
"""

from __future__ import annotations

import html
import itertools
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, DataRange1d, FactorRange, HoverTool, Range1d
from bokeh.models.annotations import LabelSet
from bokeh.models.widgets.tables import HTMLTemplateFormatter
from bokeh.plotting import figure

from dashboard import panes
from dashboard.palette import CATEGORIES, CATEGORY_COLORS, category_color
from dashboard.plain_text import plain
from dashboard.state import Coverage, FeedRow, LiveState, RatePoint, Tick
from dashboard.tables import ReadOnlyTabulator
from sse_core import (
    FAILURE_TYPES,
    ConnectionState,
    ConnectionStatus,
    SSEEventCategory,
    SubscriberStats,
)

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
.coverage { font-size: 12px; opacity: .8; margin: 2px 2px 0; }
.coverage.partial { color: #FF9830; opacity: 1; }
"""
FAILURE_COLOR = "#F2495C"  # Grafana's red
WARNING_COLOR = "#FF9830"
SEVERITY_COLORS = {"failure": FAILURE_COLOR, "warning": WARNING_COLOR}

STATE_COLORS: Mapping[ConnectionState, str] = {
    ConnectionState.CONNECTED: "#73BF69",
    ConnectionState.CONNECTING: "#FADE2A",
    ConnectionState.RECONNECTING: "#FF9830",
    ConnectionState.IDLE: "#8E8E8E",
}


def _html_pane(text: str = "", **params: object) -> pn.pane.HTML:
    return panes.HTML(text, stylesheets=[CARD_CSS], sizing_mode="stretch_width", **params)


# -- plain renderers (pure functions of state; tested without a browser) ----------------------


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_window(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:g} min" if minutes >= 1 else f"{seconds:g} s"


def render_stats(
    tick: Tick | None, stats: SubscriberStats | None, *, paused: bool, window: float = 60.0
) -> str:
    total = tick.total if tick else 0
    rate = tick.events_per_second if tick else 0.0
    age = tick.seconds_since_last if tick else None
    failures = tick.failures if tick else 0
    per_minute = tick.failures_per_minute if tick else 0.0
    skipped = stats.malformed if stats else 0
    dropped = stats.dropped if stats else 0
    gaps = tick.gaps if tick else 0
    badge = '<span class="badge">paused</span>' if paused else ""
    span = format_window(window)
    cards = [
        ("total", f"Events · last {span}{badge}", f"{total:,}", "", ""),
        (
            "failures",
            f"Failures · last {span}",
            f"{failures:,}",
            f"· {per_minute:,.1f}/min",
            "bad" if failures else "",
        ),
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


def render_coverage(coverage: Coverage | None, *, retention: bool = True) -> str:
    """What the numbers cover, said plainly (Grafana shows its time range the same way)."""
    if coverage is None:
        return ""
    span = format_window(coverage.window_seconds)
    opened = datetime.fromtimestamp(coverage.live_from_ms / 1000, UTC).strftime("%H:%M:%S")
    if not retention:
        text, tone = f"live since {opened} UTC · retention is off, so no history", "partial"
    elif coverage.complete:
        text, tone = f"last {span} from retention + live", ""
    elif coverage.history_from_ms is None:
        text = f"retention holds nothing from the last {span}; live since {opened} UTC"
        tone = "partial"
    else:
        reach = format_age(coverage.history_seconds)
        since = datetime.fromtimestamp(coverage.history_from_ms / 1000, UTC).strftime("%H:%M:%S")
        text = f"retention reaches back only {reach} of {span} (to {since} UTC) + live"
        tone = "partial"
    return (
        f'<div class="coverage {tone}" data-complete="{str(coverage.complete).lower()}" '
        f'data-window="{coverage.window_seconds:g}">{html.escape(text)}</div>'
    )


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
        ("Redis", f"<code>{plain(redis_label)}</code>"),
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
            x_axis_label="events in the time window",
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

    def reset(
        self, points: Sequence[RatePoint], now_ms: float, window_seconds: float | None = None
    ) -> None:
        """Redraw from ``points`` (a new view, history back-filled, a new window)."""
        if window_seconds is not None:
            self.window_ms = window_seconds * 1000.0
            self.rollover = max(len(points), int(window_seconds))
        self.source.data = self._columns(points)
        self._follow(points[-1].time_ms if points else now_ms)

    def _follow(self, end_ms: float) -> None:
        self._last_ms = end_ms
        self.x_range.update(start=end_ms - self.window_ms, end=end_ms)


def _severity_style(value: object) -> str:
    color = SEVERITY_COLORS.get(str(value))
    return f"color: {color}; font-weight: 600" if color else ""


def _type_style(value: object) -> str:
    text = str(value)
    if text.startswith("gap ("):
        return f"color: {WARNING_COLOR}"
    return f"color: {FAILURE_COLOR}; font-weight: 600" if text in FAILURE_TYPE_NAMES else ""


FAILURE_TYPE_NAMES = frozenset(t.value for t in FAILURE_TYPES)


class FeedTable:
    """The most recent events, newest first, filtered by type and text; failures stand out.

    Rows keep their whole event (the inspector shows it, the replay panel uses its id). A
    Tabulator, not a Bokeh DataTable: Bokeh 3.9's DataTable does not redraw when its data is
    replaced by rows of the same count, which is every tick once the feed is full. Read-only
    (:class:`~dashboard.tables.ReadOnlyTabulator`), so a notebook's echoes cannot break it.
    """

    FIELDS = ("time", "severity", "category", "event_type", "summary", "event_id", "color")

    def __init__(self, height: int = 330, rows: int = 50) -> None:
        self.rows = rows
        self.event_types: frozenset[str] = frozenset()
        self.search = ""
        self.shown: list[FeedRow] = []
        chip = HTMLTemplateFormatter(
            template='<span style="color:<%- color %>;font-weight:600">&#9679; <%- value %></span>'
        )
        self.table = ReadOnlyTabulator(
            self._frame([]),
            show_index=False,
            selectable=False,
            sortable=False,
            hidden_columns=["color"],
            formatters={"category": chip},
            titles={
                "time": "time (UTC)",
                "severity": "level",
                "event_type": "type",
                "summary": "data",
                "event_id": "event id",
            },
            widths={
                "time": 110,
                "severity": 75,
                "category": 120,
                "event_type": 220,
                "event_id": 300,
            },
            layout="fit_columns",
            height=height,
            sizing_mode="stretch_width",
            css_classes=["live-feed"],
        )
        if self.table.style is not None:
            self.table.style.map(_severity_style, subset=["severity"])
            self.table.style.map(_type_style, subset=["event_type"])

    def _frame(self, rows: Iterable[FeedRow]) -> pd.DataFrame:
        rows = list(rows)
        columns = {
            "time": [r.time for r in rows],
            "severity": [r.severity if r.severity != "info" else "" for r in rows],
            "category": [r.category for r in rows],
            "event_type": [r.event_type for r in rows],
            "summary": [r.summary for r in rows],
            "event_id": [r.event_id for r in rows],
            "color": [category_color(r.category) for r in rows],
        }
        # Explicit text dtype: an empty column would be float, and Tabulator keeps the first
        # DataFrame's formatters (showing NaN for every later string).
        return pd.DataFrame({k: pd.Series(v, dtype=str) for k, v in columns.items()})

    @property
    def filtering(self) -> bool:
        return bool(self.event_types or self.search)

    def set_filter(self, event_types: Collection[str], search: str) -> None:
        self.event_types = frozenset(event_types)
        self.search = search.strip().lower()

    def matching(self, rows: Iterable[FeedRow]) -> Iterable[FeedRow]:
        """Rows passing the type filter and containing every word of the search, in order."""
        words = self.search.split()
        for row in rows:
            if self.event_types and row.event_type not in self.event_types:
                continue
            if words:
                text = row.search_text()
                if not all(word in text for word in words):
                    continue
            yield row

    def show(self, rows: Iterable[FeedRow]) -> None:
        shown = list(itertools.islice(self.matching(rows), self.rows))
        if len(shown) == len(self.shown) and all(map(operator.is_, shown, self.shown)):
            return  # redrawing the same rows would swallow a click landing meanwhile
        self.shown = shown
        self.table.value = self._frame(shown)

    def row_at(self, index: int) -> FeedRow | None:
        return self.shown[index] if 0 <= index < len(self.shown) else None

    def event_id_at(self, index: int) -> str | None:
        row = self.row_at(index)
        return row.event_id or None if row is not None else None


# -- the live area as one unit --------------------------------------------------------------


class LiveViews:
    """Every live-updating element of the page, applied from one tick at a time.

    Pause freezes all of it at the last tick shown (numbers, charts, feed), like Grafana's
    paused refresh; counting goes on underneath and resuming redraws everything.
    """

    def __init__(self, *, history_points: int, window_seconds: float, feed_rows: int = 50) -> None:
        self.counts_chart = CountsChart()
        self.rates_chart = RatesChart(history_points, window_seconds)
        self.feed = FeedTable(rows=feed_rows)
        self.stats = _html_pane(render_stats(None, None, paused=False), name="stats")
        self.coverage = _html_pane("", name="coverage", css_classes=["coverage-line"])
        self.category_counts = _html_pane(render_category_counts({}), name="category-counts")
        self.feed_caption = _html_pane("", name="feed-caption", css_classes=["feed-caption"])
        self.status = _html_pane("", name="connection-status")
        self._status_html = ""
        self._shown: tuple[Tick, SubscriberStats | None, float] | None = None
        self._frozen_rows: list[FeedRow] | None = None
        self._rows_shown: list[FeedRow] = []
        self._feed_dirty = False
        self._counts: Mapping[SSEEventCategory, int] | None = None

    def show_status(self, redis_label: str, status: ConnectionStatus | None) -> None:
        text = render_status(redis_label, status)
        if text != self._status_html:
            self._status_html = self.status.object = text

    def refilter(self) -> None:
        """The feed filter changed: show it at once if paused, else at the next tick."""
        if self._frozen_rows is not None:
            self._show_feed(self._frozen_rows)
        else:
            self._feed_dirty = True

    def _show_feed(self, rows: Collection[FeedRow]) -> None:
        self.feed.show(rows)
        shown, kept = len(self.feed.shown), len(rows)
        if self.feed.filtering:
            text = f"{shown:,} matching of the last {kept:,} events (newest first)"
        else:
            text = f"newest {shown:,} of the last {kept:,} events"
        self.feed_caption.object = (
            f'<div class="coverage" data-shown="{shown}" data-kept="{kept}">{text}</div>'
        )

    def apply(
        self,
        tick: Tick,
        state: LiveState,
        stats: SubscriberStats | None,
        *,
        full: bool,
        paused: bool,
        now_ms: float,
        retention: bool = True,
    ) -> None:
        """One batch of changes; ``full`` redraws from ``state`` (new subscription, resume)."""
        window = state.window_seconds
        if paused:
            if self._frozen_rows is None:  # entering pause: freeze what was last shown
                self._frozen_rows = list(state.feed) if self._shown is None else self._rows_shown
                shown_tick, shown_stats, _ = self._shown or (None, None, window)
                self.stats.object = render_stats(
                    shown_tick, shown_stats, paused=True, window=window
                )
            return
        self._frozen_rows = None
        self._shown = (tick, replace(stats) if stats is not None else None, window)
        self.stats.object = render_stats(tick, stats, paused=False, window=window)
        coverage = render_coverage(tick.coverage, retention=retention)
        if coverage != self.coverage.object:
            self.coverage.object = coverage
        if full or tick.redraw:
            self.rates_chart.reset(state.rate_history, now_ms, window)
        else:
            self.rates_chart.append(tick.rate_points)
        if full or tick.counts != self._counts:
            self._counts = tick.counts
            self.counts_chart.show(tick.counts)
            self.category_counts.object = render_category_counts(tick.counts)
        if full or tick.changed or self._feed_dirty:
            self._feed_dirty = False
            self._rows_shown = list(state.feed)
            self._show_feed(self._rows_shown)
