"""The one place that gives each event category its colour.

Charts, the legend, the live feed and the replay table all read from here, so a category looks
the same everywhere (Grafana's classic palette: readable on dark and light backgrounds).
"""

from __future__ import annotations

from types import MappingProxyType

from dashboard.state import CATEGORIES
from sse_core import SSEEventCategory

__all__ = ["CATEGORIES", "CATEGORY_COLORS", "NEUTRAL_COLOR", "category_color"]

CATEGORY_COLORS: MappingProxyType[SSEEventCategory, str] = MappingProxyType(
    {
        SSEEventCategory.DATA_SYNC: "#5794F2",  # blue
        SSEEventCategory.PROVIDER: "#B877D9",  # purple
        SSEEventCategory.AI: "#73BF69",  # green
        SSEEventCategory.IMPORT: "#FF9830",  # orange
        SSEEventCategory.PORTFOLIO: "#FADE2A",  # yellow
        SSEEventCategory.SECURITY: "#F2495C",  # red
    }
)

# Rows that are not events (stream gaps) and anything unknown.
NEUTRAL_COLOR = "#8E8E8E"


def category_color(category: str) -> str:
    """Colour for a category name or enum value; neutral grey for anything else."""
    try:
        return CATEGORY_COLORS[SSEEventCategory(category)]
    except ValueError:
        return NEUTRAL_COLOR
