"""The one rule for showing what events and links carry: as text, never as markup.

Producers choose every payload key and value, and anyone can craft a link; the operator's
session sees every user's stream, so any of it rendered as HTML is stored (or reflected) XSS.
Two sinks parse HTML in this dashboard:

* HTML, Markdown and Alert panes: put outside text through :func:`plain`;
* Tabulator column titles: Tabulator sets each title *and its header tooltip* with
  ``innerHTML`` (and payload keys become ``data.<key>`` columns), so every table that can show
  event content is a :class:`PlainTabulator`, which escapes every title it sends, however the
  table's ``value`` or ``titles`` change. Cells are safe with Panel's default formatters (Bokeh's
  ``StringFormatter`` and friends build text nodes); an ``HTMLTemplateFormatter`` must use
  ``<%- value %>`` (escaped), never ``<%= value %>``.

Bokeh hover tooltips given as ``(label, "@field")`` pairs insert values as text.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn


def plain(value: object) -> str:
    """``value`` as text content of an HTML, Markdown or Alert pane: shown, never parsed.

    For text between tags only: outside text never goes into an attribute value.
    """
    return html.escape(str(value), quote=False)


class PlainTabulator(pn.widgets.Tabulator):
    """A Tabulator whose column titles (and header tooltips) are always plain text."""

    def _get_columns(self) -> list[Any]:
        columns: list[Any] = super()._get_columns()
        for column in columns:
            column.title = plain(column.title)
        return columns
