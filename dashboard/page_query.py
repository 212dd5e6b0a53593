"""Checking the page's own query parameters before anything renders from them.

Panel reads some parameters of the request that opened a session by itself (``?theme=``: its
``config.theme`` and the Fast templates index a dict with the raw value, so an unknown value
is a ``KeyError`` page). :func:`sanitize_page_query` therefore rewrites the session's arguments
in place *before* the template is built: each known parameter keeps only a valid value, and
every value it had to drop becomes a notice for the page (shown as text, see
:mod:`dashboard.plain_text`). ``?user=`` and ``?categories=`` are the view's own state and are
checked by the view (``Dashboard``), which explains bad values next to the controls.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

THEMES: tuple[str, ...] = ("default", "dark")
DEFAULT_THEME = "dark"  # like Grafana; the header's toggle reloads with ?theme=default
QUOTE_LIMIT = 80  # a notice quotes at most this much of a rejected value


@dataclass(frozen=True, slots=True)
class PageQuery:
    """What the page may use from its link, and what it had to ignore (one notice each)."""

    theme: str = DEFAULT_THEME
    notices: tuple[str, ...] = ()


def _quoted(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return repr(text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "…")


def sanitize_page_query(arguments: MutableMapping[str, list[bytes]]) -> PageQuery:
    """Validate ``arguments`` (a request's query, name → raw values) and fix them in place.

    An unknown or repeated ``theme`` falls back to :data:`DEFAULT_THEME` with a notice.
    """
    notices: list[str] = []
    values = arguments.get("theme") or []
    theme = DEFAULT_THEME
    if len(values) > 1:
        notices.append(
            f"The link gives theme {len(values)} times; showing the {DEFAULT_THEME} theme."
        )
    elif values:
        asked = values[0].decode("utf-8", errors="replace").strip()
        if asked in THEMES:
            theme = asked
        elif asked:  # an empty value is no choice, as for Panel
            notices.append(
                f"Ignored the link's theme {_quoted(values[0])}: use one of "
                f"{', '.join(THEMES)}; showing the {DEFAULT_THEME} theme."
            )
    arguments["theme"] = [theme.encode()]
    return PageQuery(theme, tuple(notices))
