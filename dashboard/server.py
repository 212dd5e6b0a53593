"""The server entry point: ``ssewatch serve`` runs the dashboard at ``/`` with Panel.

One :class:`~dashboard.backend.Backend` (Redis client, demo traffic) per process, shared by
every browser session. Sessions whose tab closed are destroyed within ~``UNUSED_SESSION_MS +
CHECK_UNUSED_MS`` (Bokeh's defaults are 15 s + 17 s), which stops their subscription.
"""

from __future__ import annotations

import errno
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import panel as pn
from bokeh.document import Document
from panel.io import resources as panel_resources

from dashboard.app import Dashboard
from dashboard.backend import Backend
from dashboard.cli import DEFAULT_ADDRESS, DEFAULT_PORT
from dashboard.metrics import metrics_route
from dashboard.page_query import sanitize_page_query
from dashboard.plain_text import plain
from sse_core import SSESettings
from sse_core.http.tornado import answering_oversized_heads, event_routes

log = logging.getLogger(__name__)
UNUSED_SESSION_MS = 2_000  # how long a session with no open connection is kept
CHECK_UNUSED_MS = 1_000  # how often Bokeh looks for such sessions

# A Tornado route as Bokeh's ``extra_patterns`` takes it: (pattern, handler class[, kwargs]).
Route = tuple[Any, ...]
# Extra routes, or a factory building them from the shared backend (so an SSE endpoint such
# as ``GET /events`` reads from the same Redis client as the dashboard sessions).
ExtraRoutes = Sequence[Route] | Callable[[Backend], Sequence[Route]]
# What a session shows: the dashboard's template, or a plain message when it cannot be built.
Page = pn.template.BaseTemplate | pn.viewable.Viewable


class CannotListen(RuntimeError):
    """The server's address could not be bound: a busy port, or an address not on this host."""

    def __init__(self, address: str, port: int, error: OSError) -> None:
        if error.errno == errno.EADDRINUSE:
            reason = f"port {port} is already in use on {address}"
            hint = "stop the other server or pick another port with --port"
        else:
            reason = f"cannot listen on {address}:{port}: {error.strerror or error}"
            hint = "check --address and --port"
        super().__init__(f"{reason}; {hint}")
        self.error = error


def build_app(backend: Backend) -> Callable[[], Page]:
    """The per-session factory Panel calls for every new browser session.

    The link's parameters are checked before any template sees them (:mod:`page_query`), and
    a session that fails to build shows a plain message, never Panel's traceback page (which
    would print server paths and quote the request unescaped); the traceback goes to the log.
    """

    def create_session() -> Page:
        try:
            _local_stylesheets(pn.state.curdoc)
            query = sanitize_page_query(pn.state.session_args)
            # (config.theme is typed read-only, but Panel's config stores it per session.)
            pn.config.theme = query.theme  # type: ignore[misc]
            template = Dashboard(backend=backend).template()
            if query.notices and template.main is not None:
                template.main.insert(0, link_notice(query.notices))
            return template
        except Exception:
            reference = secrets.token_hex(4)
            log.exception("building a dashboard session failed (reference %s)", reference)
            return failed_page(reference)

    return create_session


def _local_stylesheets(doc: Document | None) -> None:
    """Make every stylesheet URL this session's models get point at this server from the start.

    Panel writes a component's stylesheet URLs against the document's ``dist_url`` template
    variable and falls back to cdn.holoviz.org while it is unset; it sets it only when it
    renders the page, after this factory ran, then patches the models it finds. On a busy
    machine the live view's tasks add models in between, and the page then loaded its CSS from
    the CDN (offline: unstyled). Set here, it is the same value Panel sets with local resources.
    """
    if doc is not None and panel_resources.RESOURCE_MODE == "server":
        doc.template_variables.setdefault("dist_url", panel_resources.LOCAL_DIST)


def link_notice(notices: Sequence[str]) -> pn.pane.Alert:
    """What the page ignored from its link, quoted as text."""
    return pn.pane.Alert(
        "<br>".join(plain(n) for n in notices),
        alert_type="warning",
        sizing_mode="stretch_width",
        css_classes=["link-notice"],
    )


def failed_page(reference: str) -> pn.viewable.Viewable:
    """A page with no detail an attacker could use; the log has it under ``reference``."""
    return pn.pane.Alert(
        f"ssewatch could not open this page. The server log has the details "
        f"(reference {reference}).",
        alert_type="danger",
        sizing_mode="stretch_width",
        css_classes=["page-error"],
    )


def build_server(
    redis_url: str | None = None,
    *,
    port: int = DEFAULT_PORT,
    address: str = DEFAULT_ADDRESS,
    show: bool = False,
    extra_routes: ExtraRoutes | None = None,
    settings: SSESettings | None = None,
    demo: bool | None = None,
    verbose: bool = True,
    auth: Mapping[str, Any] | None = None,
) -> tuple[Any, Backend]:
    """A started-but-not-running Panel server and its backend (for embedding and tests).

    ``GET /events``, the SSE endpoint (``sse_core.http``, docs/http.md), and ``GET /metrics``
    (Prometheus, docs/metrics.md) are always mounted on the backend's client; ``extra_routes``
    mounts more Tornado handlers (matched first). ``auth`` holds Panel's login options
    (``basic_auth``, ``cookie_secret``, ``oauth_*``). A port that cannot be bound raises
    :class:`CannotListen`.
    """
    backend = Backend.create(redis_url, settings=settings, demo=demo)
    events = event_routes(backend.client, backend.settings)
    endpoint = next((options.get("endpoint") for *_, options in events), None)
    routes = [
        *(extra_routes(backend) if callable(extra_routes) else extra_routes or []),
        *events,
        metrics_route(backend, endpoint),
    ]
    pn.extension("tabulator")
    try:
        with answering_oversized_heads():  # 431, not a silent close, past the 64 KiB head limit
            server = pn.serve(
                {"/": build_app(backend)},
                port=port,
                address=address,
                websocket_origin=[h if h == "*" else f"{h}:{port}" for h in _origin_hosts(address)],
                show=show,
                start=False,
                title="ssewatch",
                verbose=verbose,
                extra_patterns=routes,
                unused_session_lifetime_milliseconds=UNUSED_SESSION_MS,
                check_unused_sessions_milliseconds=CHECK_UNUSED_MS,
                **dict(auth or {}),
            )
    except OSError as exc:
        raise CannotListen(address, port, exc) from None
    server.io_loop.add_callback(backend.start_demo)
    return server, backend


def serve(
    redis_url: str | None = None,
    *,
    port: int = DEFAULT_PORT,
    address: str = DEFAULT_ADDRESS,
    show: bool = False,
    extra_routes: ExtraRoutes | None = None,
    settings: SSESettings | None = None,
    demo: bool | None = None,
    auth: Mapping[str, Any] | None = None,
) -> None:
    """Run the dashboard server until interrupted."""
    server, backend = build_server(
        redis_url,
        port=port,
        address=address,
        show=show,
        extra_routes=extra_routes,
        settings=settings,
        demo=demo,
        auth=auth,
    )
    log.info("serving ssewatch on http://%s:%s/ (Redis: %s)", address, port, backend.label)
    server.start()
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        server.io_loop.run_sync(backend.aclose)
        server.stop()


def _origin_hosts(address: str) -> list[str]:
    if address in ("127.0.0.1", "localhost"):
        return ["127.0.0.1", "localhost"]
    if address in ("0.0.0.0", "::", ""):
        return ["*"]  # any interface: the browser may use any of the host's names
    return [address]
