"""A Tabulator the browser cannot write to: the one table widget of the dashboard.

In a notebook, Panel's comm manager sends every document change back to the kernel, including
the ones the browser only applied *from* the kernel. A Tabulator takes that echo for a cell
edit: when Python has replaced the frame in the meantime, the stale copy either reverts the
table or raises in pandas (``Must have equal len keys and value``), and an exception there
leaves the notebook output's document un-held, so the output stops updating for good
(docs/jupyter.md). The dashboard's tables are never edited in the browser, so data coming
from the browser is dropped; clicks, paging and sorting still reach Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dashboard.plain_text import PlainTabulator


class ReadOnlyTabulator(PlainTabulator):
    """``pn.widgets.Tabulator(disabled=True)`` that ignores data sent back by the browser.

    It is a :class:`~dashboard.plain_text.PlainTabulator` too: titles are always plain text.
    """

    def __init__(self, value: Any = None, **params: Any) -> None:
        params["disabled"] = True
        super().__init__(value, **params)

    # Panel's hook for table data sent by the browser (SyncableData._process_events calls it);
    # tests/test_dashboard_tables.py fails if Panel renames or bypasses it.
    def _process_data(self, data: Mapping[str, Any]) -> None:
        """Drop it: only Python changes this table's data, so anything else is an echo."""
