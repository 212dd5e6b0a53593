"""Panel's Fast design, minus its web font: the served page needs nothing from the internet.

``pn.theme.Fast`` lists Open Sans from fonts.googleapis.com among its resources, and the Fast
templates add it to every page whatever ``font_url`` says; offline the page waits on it and
falls back anyway. This design is the same in every other respect (its class name is kept:
Panel derives the path of a design's own bundled files from it). The text uses the system's UI
font, as Grafana falls back to.
"""

from __future__ import annotations

import panel as pn

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'

_RESOURCES = pn.theme.Fast._resources.copy()
_RESOURCES.pop("font", None)


class Fast(pn.theme.Fast):
    """The Fast design without ``_resources["font"]``."""

    _resources = _RESOURCES
