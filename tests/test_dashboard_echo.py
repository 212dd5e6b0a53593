"""A notebook's browser echoes the kernel's own updates back (docs/jupyter.md): they must not
break the tables, freeze the output or switch off the replay panel's "follow newest id".

The echo is reproduced the way Panel receives it in a notebook: a change of a model rendered
with a comm, made from outside Panel (as ``apply_json_patch`` of a comm message does), carrying
data the kernel sent earlier. The real JupyterLab page is driven in test_jupyterlab_browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from pyviz_comms import Comm

from dashboard.errors import install_exception_handler, log_exception
from dashboard.replay_panel import ReplayPanel
from dashboard.tables import ReadOnlyTabulator
from dashboard.views import FeedTable
from sse_core.ids import uuid7
from sse_core.replay import Replay


def frame(rows: int, tag: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"event_id": [f"{tag}-{i}" for i in range(rows)], "summary": [tag] * rows}, dtype=str
    )


def rendered_in_a_notebook(widget: pn.viewable.Viewable) -> Any:
    """The widget's Bokeh model as a notebook output holds it (bound to a comm)."""
    return widget.get_root(Document(), comm=Comm())


def echo(model: Any, data: dict[str, list[Any]]) -> None:
    """What the browser sends back: the table data it was given earlier."""
    model.source.data = data


def sent(model: Any) -> dict[str, list[Any]]:
    return {name: list(column) for name, column in model.source.data.items()}


@pytest.fixture
def no_exception_handler() -> Iterator[None]:
    """Panel's default (re-raise), as in a notebook where nothing installed a handler."""
    previous = pn.config.exception_handler
    pn.config.exception_handler = None
    try:
        yield
    finally:
        pn.config.exception_handler = previous


@pytest.mark.usefixtures("no_exception_handler")
def test_a_plain_tabulator_breaks_on_a_stale_echo() -> None:
    """The failure the read-only table exists for; if Panel fixes it upstream, this says so."""
    table = pn.widgets.Tabulator(frame(5, "old"), disabled=True)
    model = rendered_in_a_notebook(table)
    stale = sent(model)
    table.value = frame(3, "new")
    with pytest.raises(ValueError, match="equal len"):
        echo(model, stale)


@pytest.mark.usefixtures("no_exception_handler")
@pytest.mark.parametrize("rows", [3, 5], ids=["fewer-rows", "same-rows"])
def test_the_feed_ignores_a_stale_echo(rows: int) -> None:
    feed = FeedTable()
    assert isinstance(feed.table, ReadOnlyTabulator)
    feed.table.value = frame(5, "old")
    model = rendered_in_a_notebook(feed.table)
    stale = sent(model)
    feed.table.value = frame(rows, "new")
    echo(model, stale)  # raised (fewer rows) or reverted to "old" (same rows) before
    assert feed.table.value["event_id"].tolist() == [f"new-{i}" for i in range(rows)]


@pytest.mark.usefixtures("no_exception_handler")
def test_the_paginated_replay_table_ignores_a_stale_echo() -> None:
    panel = ReplayPanel(FakeSource())
    assert isinstance(panel.table, ReadOnlyTabulator)
    panel.table.value = frame(25, "old")
    model = rendered_in_a_notebook(panel.table)
    stale = sent(model)
    panel.table.value = frame(4, "new")
    echo(model, stale)
    assert panel.table.value["event_id"].tolist() == [f"new-{i}" for i in range(4)]


def test_the_read_only_table_overrides_the_hook_panel_calls() -> None:
    """Guard against a Panel rename: the overridden method must be one Panel's table defines."""
    assert "_process_data" in vars(ReadOnlyTabulator)
    assert callable(getattr(pn.widgets.Tabulator, "_process_data", None))
    assert ReadOnlyTabulator(frame(1, "x")).disabled


@pytest.mark.usefixtures("no_exception_handler")
def test_a_failing_browser_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    install_exception_handler()
    assert pn.config.exception_handler is log_exception
    box = pn.widgets.TextInput(value="a")
    box.param.watch(lambda _event: 1 / 0, "value")
    model = rendered_in_a_notebook(box)
    model.value = "typed in the browser"  # Panel would re-raise this out of doc.unhold()
    assert box.value == "typed in the browser"
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


@pytest.mark.usefixtures("no_exception_handler")
def test_a_users_own_exception_handler_is_kept() -> None:
    def mine(_exception: BaseException) -> None:
        pass

    pn.config.exception_handler = mine
    install_exception_handler()
    assert pn.config.exception_handler is mine


class FakeSource:
    async def replay(self, *_args: object, **_kwargs: object) -> Replay:
        return Replay([], complete=True)


def test_echoes_of_earlier_ids_do_not_stop_following() -> None:
    panel = ReplayPanel(FakeSource())
    model = rendered_in_a_notebook(panel.last_id)
    ids = [str(uuid7()) for _ in range(5)]
    for newest in ids:
        panel.offer_newest(newest)
    for earlier in ids[:-1]:  # each comes back from the browser after a newer one was set
        model.value = earlier
    assert panel.follow.value
    panel.offer_newest(newer := str(uuid7()))
    assert panel.last_id.value == newer


def test_a_late_echo_does_not_replace_the_clicked_id() -> None:
    panel = ReplayPanel(FakeSource())
    model = rendered_in_a_notebook(panel.last_id)
    shown = str(uuid7())
    panel.offer_newest(shown)
    clicked = str(uuid7())
    panel.use_event(clicked)
    model.value = shown  # the echo of the autofill, arriving after the click
    assert not panel.follow.value
    assert panel.last_id.value == clicked


def test_an_id_typed_in_the_browser_still_stops_following() -> None:
    panel = ReplayPanel(FakeSource())
    model = rendered_in_a_notebook(panel.last_id)
    panel.offer_newest(str(uuid7()))
    typed = str(uuid7())
    model.value = typed
    assert not panel.follow.value
    panel.offer_newest(str(uuid7()))
    assert panel.last_id.value == typed
