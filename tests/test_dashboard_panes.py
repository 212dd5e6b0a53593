"""Text panes: an update sends the text and leaves the rendered stylesheets alone.

Panel's own panes rebuild every stylesheet on each ``object`` change; in a notebook the new
ones point at cdn.holoviz.org (docs/jupyter.md), which an offline page cannot load. The real
page is checked in test_jupyterlab_browser.py (no request leaves the machine).
"""

from __future__ import annotations

from typing import Any

import panel as pn
import pytest
from bokeh.document import Document
from pyviz_comms import Comm

from dashboard import panes

CSS = ".card { color: red; }"


def rendered_in_a_notebook(pane: pn.viewable.Viewable) -> Any:
    return pane.get_root(Document(), comm=Comm())


def stylesheet_ids(model: Any) -> list[str]:
    return [getattr(sheet, "id", sheet) for sheet in model.stylesheets]


@pytest.mark.parametrize(
    "pane",
    [
        panes.HTML("<b>1</b>", stylesheets=[CSS]),
        panes.Str("1"),
        panes.Alert("1", alert_type="warning"),
    ],
    ids=["HTML", "Str", "Alert"],
)
def test_an_update_changes_the_text_and_keeps_the_stylesheets(pane: pn.pane.Markdown) -> None:
    model = rendered_in_a_notebook(pane)
    before = stylesheet_ids(model)
    assert before
    pane.object = "2"
    assert "2" in model.text
    assert stylesheet_ids(model) == before


def test_panels_own_pane_rebuilds_its_stylesheets_on_every_update() -> None:
    """Why ``dashboard.panes`` exists; if Panel stops doing this, the override can go."""
    pane = pn.pane.HTML("<b>1</b>", stylesheets=[CSS])
    model = rendered_in_a_notebook(pane)
    before = stylesheet_ids(model)
    pane.object = "2"
    assert stylesheet_ids(model) != before
