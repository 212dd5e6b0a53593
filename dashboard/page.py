"""Where everything goes on the page: the sidebar, the main area, the inline and full-page forms.

The full page is a Grafana-like dark FastListTemplate (``ssewatch serve``); the inline form
(notebooks) puts the same sidebar left of the same main area.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import panel as pn

from dashboard import design

if TYPE_CHECKING:
    from dashboard.app import Dashboard

ACCENT = "#FF7F00"  # Grafana's orange: buttons, focus rings
HEADER_BACKGROUND = "#181B1F"  # a dark header bar, as in Grafana


def sidebar(view: Dashboard) -> list[Any]:
    """The controls: connection status, user, categories, window, pause."""
    return [
        pn.pane.Markdown("### Connection", margin=(0, 10)),
        view.views.status,
        pn.pane.Markdown("### View", margin=(10, 10, 0, 10)),
        view.users,
        view.category_filter,
        view.category_alert,
        view.window_select,
        view.pause,
    ]


def main(view: Dashboard) -> list[Any]:
    """Indicators, charts, the feed with the inspector, and the replay panel."""
    return [
        pn.Column(view.notice, view.views.stats, view.views.coverage, sizing_mode="stretch_width"),
        pn.Row(
            pn.Column(
                pn.pane.Bokeh(view.views.counts_chart.figure, sizing_mode="stretch_width"),
                view.views.category_counts,
                sizing_mode="stretch_width",
            ),
            pn.pane.Bokeh(view.views.rates_chart.figure, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        ),
        pn.Row(
            pn.Column(
                pn.pane.Markdown(
                    "#### Live feed · click a row to inspect it and replay after it",
                    margin=(0, 10),
                ),
                pn.Row(view.type_filter, view.search, sizing_mode="stretch_width"),
                view.views.feed_caption,
                view.views.feed.table,
                sizing_mode="stretch_width",
            ),
            pn.Column(
                pn.pane.Markdown("#### Event", margin=(0, 10)),
                view.inspector,
                width=440,
            ),
            sizing_mode="stretch_width",
        ),
        pn.Column(
            pn.pane.Markdown("#### Replay · what a client resuming after an id receives"),
            view.replay,
            sizing_mode="stretch_width",
        ),
    ]


def inline(view: Dashboard) -> pn.viewable.Viewable:
    """Inline form (notebooks): sidebar on the left, main area on the right."""
    return pn.Row(
        pn.Column(*sidebar(view), width=320),
        pn.Column(*main(view), sizing_mode="stretch_width"),
        sizing_mode="stretch_width",
    )


def full_page(view: Dashboard, title: str = "ssewatch") -> pn.template.FastListTemplate:
    """The full-page form the server shows (Grafana-like dark layout)."""
    return pn.template.FastListTemplate(
        title=title,
        sidebar=sidebar(view),
        main=main(view),
        theme=pn.config.theme,  # FastListTemplate ignores the config unless told
        theme_toggle=True,
        accent_base_color=ACCENT,
        header_background=HEADER_BACKGROUND,
        sidebar_width=340,
        main_layout="card",
        design=design.Fast,  # no web font: nothing leaves the machine
        font=design.FONT,
        font_url="",
    )
