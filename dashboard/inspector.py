"""The event inspector: one event shown whole, as pretty JSON, with its id ready to copy.

Everything an event carries is shown as text, never as markup: the JSON and the id are the
values of text fields (the browser sets them as ``value``, never parses them as HTML).
"""

from __future__ import annotations

import json
from typing import Any

import panel as pn
from panel.viewable import Viewer

from dashboard import icons, panes
from sse_core import SSEEvent, severity_of

JSON_CSS = """
textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
           font-size: 12px; line-height: 1.45; white-space: pre-wrap; word-break: break-word; }
"""
PROMPT = "Click a row of the live feed to see that event whole."


def event_json(event: SSEEvent) -> str:
    """Every field of the event (its JSON-safe form, payload included), indented."""
    return json.dumps(event.to_dict(), indent=2, ensure_ascii=False, default=str)


class Inspector(Viewer):
    """Shows the last event clicked in the feed."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.event: SSEEvent | None = None
        self.heading = panes.Str(PROMPT, css_classes=["inspector-heading"], margin=(0, 10))
        self.event_id = pn.widgets.TextInput(
            name="Event id",
            placeholder="(no event selected)",
            sizing_mode="stretch_width",
            css_classes=["inspector-id"],
        )
        self.copy = pn.widgets.Button(
            name="Copy id", icon=icons.COPY, width=110, align="end", css_classes=["inspector-copy"]
        )
        # The browser copies (the server has no clipboard); the field is the one source.
        self.copy.js_on_click(
            args={"field": self.event_id},
            code="navigator.clipboard && navigator.clipboard.writeText(field.value)",
        )
        self.json = pn.widgets.TextAreaInput(
            value="",
            rows=20,
            stylesheets=[JSON_CSS],
            sizing_mode="stretch_width",
            css_classes=["inspector-json"],
            visible=False,
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.heading,
            pn.Row(self.event_id, self.copy, sizing_mode="stretch_width"),
            self.json,
            sizing_mode="stretch_width",
            css_classes=["inspector"],
        )

    def inspect(self, event: SSEEvent) -> None:
        self.event = event
        severity = severity_of(event.event_type).value
        when = event.occurred_at.isoformat(timespec="milliseconds")
        with pn.io.hold():
            self.heading.object = f"{event.event_type.value} · {severity} · {when}"
            self.event_id.value = str(event.event_id)
            self.json.param.update(value=event_json(event), visible=True)
