"""The plain-text rule and the page's query checks, without a browser (issue #9, items 1, 2).

The browser half (the payloads really not running in Chromium) is tests/test_dashboard_xss.py.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import cast
from uuid import uuid4

import pandas as pd
import panel as pn
import pytest

from dashboard.backend import Backend
from dashboard.page_query import DEFAULT_THEME, THEMES, sanitize_page_query
from dashboard.plain_text import PlainTabulator, plain
from dashboard.replay_panel import render_summary
from dashboard.server import build_app
from dashboard.views import FeedTable, render_status
from sse_core.events import SSEEvent
from sse_core.frames import events_to_frame
from sse_core.registry import SSEEventType

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PAYLOAD = '<img src=x onerror="window.__xss=1">'


def hostile_frame() -> pd.DataFrame:
    event = SSEEvent(
        event_type=SSEEventType.AI_RESPONSE_CHUNK,
        user_id=uuid4(),
        data={PAYLOAD: PAYLOAD, "nested": {PAYLOAD: [PAYLOAD]}},
    )
    return events_to_frame([event])


def titles(table: PlainTabulator) -> dict[str, str]:
    return {c.field: c.title for c in table.get_root().columns}


def test_plain_escapes_markup_and_quotes() -> None:
    assert plain(PAYLOAD) == '&lt;img src=x onerror="window.__xss=1"&gt;'
    assert plain(3) == "3"


def test_every_tabulator_title_is_text_however_the_value_changes() -> None:
    table = PlainTabulator(events_to_frame([]), titles={"event_id": "<b>id</b>"})
    assert titles(table)["event_id"] == "&lt;b&gt;id&lt;/b&gt;"
    table.value = hostile_frame()  # new payload columns arrive with a new value
    shown = titles(table)
    assert shown[f"data.{PAYLOAD}"] == f"data.{plain(PAYLOAD)}"
    assert shown[f"data.nested.{PAYLOAD}"] == f"data.nested.{plain(PAYLOAD)}"
    assert not any("<" in title for title in shown.values())


def test_the_dashboards_tables_follow_the_rule() -> None:
    assert isinstance(FeedTable().table, PlainTabulator)
    template = FeedTable().table.formatters["category"].template
    assert "<%=" not in template  # underscore's unescaped interpolation


def test_html_panes_quote_outside_text() -> None:
    summary = render_summary(hostile_frame(), True, PAYLOAD)
    assert PAYLOAD not in summary
    assert plain(PAYLOAD) in summary
    assert PAYLOAD not in render_status(PAYLOAD, None)


def test_notebook_tables_escape_payloads() -> None:
    frame = hostile_frame()
    assert PAYLOAD not in frame._repr_html_()  # pandas escapes keys and values by default
    values = frame.rename(columns={f"data.{PAYLOAD}": "data.account_id"})
    values = values[["event_id", "data.account_id"]]
    # A Styler.format with a per-column dict drops escaping for EVERY column unless told...
    assert PAYLOAD in values.style.format({"event_id": str}).to_html()
    styled = values.style.format({"event_id": str}, escape="html").to_html()
    assert "<img" not in styled
    assert "&lt;img" in styled


def test_every_styled_table_in_the_notebooks_escapes() -> None:
    """...so each ``.style.format(`` in a notebook passes ``escape="html"``."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        calls = re.findall(r"\.style\.format\((.*)", code)
        assert all('escape="html"' in call for call in calls), (path.name, calls)


@pytest.mark.parametrize("theme", THEMES)
def test_known_theme_is_kept(theme: str) -> None:
    arguments = {"theme": [theme.encode()], "user": [b"x"]}
    query = sanitize_page_query(arguments)
    assert (query.theme, query.notices) == (theme, ())
    assert arguments == {"theme": [theme.encode()], "user": [b"x"]}


@pytest.mark.parametrize("arguments", [{}, {"theme": [b""]}, {"theme": [b"  "]}], ids=repr)
def test_no_theme_is_the_default_without_a_notice(arguments: dict[str, list[bytes]]) -> None:
    assert sanitize_page_query(arguments).notices == ()
    assert arguments["theme"] == [DEFAULT_THEME.encode()]


@pytest.mark.parametrize("raw", [PAYLOAD.encode(), b"Dark", b"\xff\xfe", b"x" * 10_000], ids=repr)
def test_unknown_theme_falls_back_with_a_notice_and_is_replaced(raw: bytes) -> None:
    arguments = {"theme": [raw]}
    query = sanitize_page_query(arguments)
    assert query.theme == DEFAULT_THEME
    assert arguments["theme"] == [DEFAULT_THEME.encode()]  # no template sees the raw value
    [notice] = query.notices
    assert "default, dark" in notice
    assert len(notice) < 250


def test_repeated_theme_is_not_guessed() -> None:
    arguments = {"theme": [b"default", b"dark"]}
    query = sanitize_page_query(arguments)
    assert query.theme == DEFAULT_THEME
    assert "2 times" in query.notices[0]
    assert arguments["theme"] == [DEFAULT_THEME.encode()]


def test_a_session_that_cannot_be_built_shows_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = cast(Backend, object())  # Dashboard() fails on it, like any bug would
    with caplog.at_level(logging.ERROR, logger="dashboard.server"):
        page = build_app(broken)()
    assert isinstance(page, pn.pane.Alert)
    text = str(page.object)
    assert "Traceback" not in text
    assert ".py" not in text
    [record] = caplog.records
    assert record.exc_info is not None  # the detail is in the server log...
    assert record.getMessage().split("reference ")[1].rstrip(")") in text  # ...under this ref
