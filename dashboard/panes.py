"""Text panes whose updates send their text, not a fresh set of stylesheets.

Panel's markup panes answer every ``object`` change with all of their properties, stylesheets
included, built anew: each flush replaced each live pane's stylesheets with new models. Served,
that is wasted traffic; in a notebook those stylesheets point at cdn.holoviz.org even with
``pn.extension(inline=True)`` (Panel inlines stylesheets only when a model is first rendered or
added), so every update made the page ask the internet for CSS. Stylesheets are set when the
pane is rendered; here an update carries the other properties only. Relies on Panel's private
``_update`` hook, as ``dashboard.tables`` does (tests/test_dashboard_echo.py notices a rename).
"""

from __future__ import annotations

from typing import Any

import panel as pn
from bokeh.model import Model


class _TextUpdates:
    def _update(self, ref: str, model: Model) -> None:
        properties: dict[str, Any] = self._get_properties(model.document)  # type: ignore[attr-defined]
        properties.pop("stylesheets", None)
        model.update(**properties)


class HTML(_TextUpdates, pn.pane.HTML):
    """``pn.pane.HTML`` whose updates leave its stylesheets alone."""


class Str(_TextUpdates, pn.pane.Str):
    """``pn.pane.Str`` whose updates leave its stylesheets alone."""


class Alert(_TextUpdates, pn.pane.Alert):
    """``pn.pane.Alert`` whose updates leave its stylesheets alone."""
