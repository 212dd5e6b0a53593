"""Sidebar controls: the user picker and the URL form of the category filter.

User ids and category names are validated by sse_core (``parse_user_id``,
``parse_category_list``); this module only turns their errors into messages on the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import panel as pn
import param
from panel.viewable import Viewer

from dashboard import panes
from dashboard.plain_text import plain
from sse_core import VALID_CATEGORIES, parse_category_list, parse_user_id

UUID_EXAMPLE = "0192f0c1-7c4e-7d3a-9b1e-2f6a8c0d4e51"


def alert_text(message: str) -> str:
    """Alert panes render Markdown and raw HTML; messages quoting user input (even from a
    shared link's query) must show it literally, never as markup (:func:`plain`)."""
    return plain(message)


def hidden_alert(css_class: str, alert_type: str = "danger") -> pn.pane.Alert:
    """An alert that stays hidden until a message is shown (show with :func:`alert_text`)."""
    return panes.Alert(
        "",
        alert_type=alert_type,
        visible=False,
        sizing_mode="stretch_width",
        css_classes=[css_class],
    )


def show_alert(alert: pn.pane.Alert, message: str | None) -> None:
    """Show ``message`` (as text) in a :func:`hidden_alert`; ``None`` or ``""`` hides it."""
    text = alert_text(message or "")
    if text != alert.object or bool(text) != alert.visible:  # called on every flush
        alert.param.update(object=text, visible=bool(text))


def parse_category_query(text: str | None) -> tuple[list[str], str | None]:
    """``"data_sync,ai"`` → the valid names in canonical order, and what was wrong (if anything).

    Invalid names are dropped (the rest of the filter still applies) and reported.
    """
    if not text:
        return [], None
    try:
        chosen = {c.value for c in parse_category_list([text])}
        error = None
    except ValueError as exc:
        parts = {part.strip() for part in text.split(",")}
        chosen = {name for name in VALID_CATEGORIES if name in parts}
        error = str(exc)
    return [name for name in VALID_CATEGORIES if name in chosen], error


def format_category_query(names: Sequence[str]) -> str:
    """The URL form; empty means "all categories" (also when every category is chosen)."""
    chosen = [name for name in VALID_CATEGORIES if name in set(names)]
    if len(chosen) == len(VALID_CATEGORIES):
        return ""
    return ",".join(chosen)


def user_label(user_id: UUID, names: Mapping[UUID, str]) -> str:
    name = names.get(user_id)
    return f"{name} · {str(user_id)[:8]}…" if name else str(user_id)


class UserPicker(Viewer):
    """Pick a known user, or type any user id; a wrong id is explained, never raised."""

    value = param.String(default="", doc="The selected user id, '' when none.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._names: dict[UUID, str] = {}
        self._users: list[UUID] = []
        self._refreshing = False
        self.select = pn.widgets.Select(
            label="User (with retained events)",
            options={},
            sizing_mode="stretch_width",
            css_classes=["user-select"],
        )
        self.entry = pn.widgets.TextInput(
            label="…or any user id",
            placeholder=f"UUID, e.g. {UUID_EXAMPLE}",
            sizing_mode="stretch_width",
            css_classes=["user-entry"],
        )
        self.alert = hidden_alert("user-error")
        self.select.param.watch(self._on_select, "value")
        self.entry.param.watch(self._on_entry, "value")
        self._refresh_options()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.select, self.entry, self.alert, sizing_mode="stretch_width")

    def set_users(self, users: Iterable[UUID], names: Mapping[UUID, str] | None = None) -> None:
        """Named users first (in the given order), then the rest by id."""
        if names is not None:
            self._names = dict(names)
        users = list(dict.fromkeys(users))
        named = [u for u in self._names if u in users]
        self._users = named + sorted((u for u in users if u not in self._names), key=str)
        self._refresh_options()

    @property
    def users(self) -> list[UUID]:
        return list(self._users)

    def show_error(self, message: str | None) -> None:
        show_alert(self.alert, message)

    @param.depends("value", watch=True)
    def _on_value(self) -> None:
        self._refresh_options()

    def _refresh_options(self) -> None:
        users = list(self._users)
        current = self._current()
        if current is not None and current not in users:
            users.insert(0, current)
        # An explicit "none" entry: left without a valid value, Panel's Select would pick the
        # first user by itself while the page is being built.
        none_label = "— pick a user —" if users else "(no users with retained events yet)"
        options = {none_label: "", **{user_label(u, self._names): str(u) for u in users}}
        self._refreshing = True  # Select may pick a value itself; that is not the user's choice
        try:
            self.select.param.update(options=options, value=str(current) if current else "")
        finally:
            self._refreshing = False

    def _current(self) -> UUID | None:
        try:
            return parse_user_id(self.value) if self.value else None
        except ValueError:
            return None

    def _on_select(self, event: param.parameterized.Event) -> None:
        if not self._refreshing and event.new and event.new != self.value:
            self.show_error(None)
            self.value = event.new

    def _on_entry(self, event: param.parameterized.Event) -> None:
        text = (event.new or "").strip()
        if not text:
            self.show_error(None)
            return
        try:
            user_id = parse_user_id(text)
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.show_error(None)
        self.value = str(user_id)
