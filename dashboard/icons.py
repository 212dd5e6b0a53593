"""The dashboard's button icons, as inline SVG.

A Panel icon given by name is a Bokeh ``TablerIcon``, whose stylesheet loads the tabler-icons
web font from cdn.jsdelivr.net: offline the buttons show no icon and the page waits on the CDN.
Inline SVG (Panel accepts it in ``icon=``) needs nothing from the network. Paths are Tabler
Icons' outline set (MIT licence, https://tabler.io/icons), the same glyphs as the names.
"""

from __future__ import annotations


def _svg(*paths: str) -> str:
    body = "".join(f'<path d="{d}"/>' for d in paths)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24" '
        'fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" '
        f'stroke-linejoin="round">{body}</svg>'
    )


PAUSE = _svg(
    "M6 6a1 1 0 0 1 1 -1h2a1 1 0 0 1 1 1v12a1 1 0 0 1 -1 1h-2a1 1 0 0 1 -1 -1z",
    "M14 6a1 1 0 0 1 1 -1h2a1 1 0 0 1 1 1v12a1 1 0 0 1 -1 1h-2a1 1 0 0 1 -1 -1z",
)
PLAY = _svg("M7 4v16l13 -8z")
HISTORY = _svg("M12 8l0 4l2 2", "M3.05 11a9 9 0 1 1 .5 4m-.5 5v-5h5")
DOWNLOAD = _svg("M4 17v2a2 2 0 0 0 2 2h12a2 2 0 0 0 2 -2v-2", "M7 11l5 5l5 -5", "M12 4l0 12")
COPY = _svg(
    "M7 9.667a2.667 2.667 0 0 1 2.667 -2.667h8.666a2.667 2.667 0 0 1 2.667 2.667v8.666a2.667 "
    "2.667 0 0 1 -2.667 2.667h-8.666a2.667 2.667 0 0 1 -2.667 -2.667z",
    "M4.012 16.737a2.005 2.005 0 0 1 -1.012 -1.737v-10c0 -1.1 .9 -2 2 -2h10c.75 0 1.158 .385 1.5 1",
)
