"""ssewatch dashboard: the live Panel view of per-user SSE streams.

``from dashboard import Dashboard`` gives the notebook/embeddable view; ``ssewatch serve`` (or
:func:`dashboard.server.serve`) runs it as a web app. Panel is imported only when used, so the
``ssewatch`` CLI stays quick for its other commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dashboard.app import Dashboard

__all__ = ["Dashboard"]


def __getattr__(name: str) -> Any:
    if name == "Dashboard":
        from dashboard.app import Dashboard

        return Dashboard
    raise AttributeError(f"module 'dashboard' has no attribute {name!r}")
