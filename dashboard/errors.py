"""What happens to an exception raised by a browser-triggered callback.

Panel re-raises it by default. In a notebook that is fatal to the output: the exception escapes
from ``doc.unhold()`` in the comm message handler, which then never holds the document again,
and a notebook output only sends what collects while held, so it freezes for good. Logging it
instead keeps the output alive; the error is still reported, once, with its traceback.
"""

from __future__ import annotations

import logging

import panel as pn

log = logging.getLogger(__name__)


def log_exception(exception: BaseException) -> None:
    log.error("a dashboard callback failed", exc_info=exception)


def install_exception_handler() -> None:
    """Route Panel callback exceptions to :func:`log_exception`, unless the user set a handler."""
    if pn.config.exception_handler is None:
        pn.config.exception_handler = log_exception
