"""Request and correlation ids: what every log line, response and event of a request carries.

The request context middleware (``libs.platform.request_context``) sets them per
request; an event handler sets them with ``correlation_scope`` to carry a causing
event's correlation id into the events it appends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"

_request_id: ContextVar[str | None] = ContextVar("crm_request_id", default=None)
_correlation_id: ContextVar[str | None] = ContextVar("crm_correlation_id", default=None)

# Ids end up in log lines, headers and events: refuse anything that could forge
# a log line or a header, and anything long enough to bloat every event.
_USABLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")


def current_request_id() -> str | None:
    """The id of the HTTP request being handled, or None outside one."""
    return _request_id.get()


def current_correlation_id() -> str | None:
    """The correlation id to stamp on events this request causes, or None outside one."""
    return _correlation_id.get()


@contextmanager
def correlation_scope(correlation_id: str, *, request_id: str | None = None) -> Iterator[None]:
    """Make ``current_correlation_id()`` answer ``correlation_id`` inside the block.

    The middleware uses it per request; an event handler can use it to carry the
    causing event's correlation id into the events it appends.
    """
    correlation_token = _correlation_id.set(correlation_id)
    request_token = _request_id.set(request_id)
    try:
        with structlog.contextvars.bound_contextvars(
            correlation_id=correlation_id, request_id=request_id
        ):
            yield
    finally:
        _request_id.reset(request_token)
        _correlation_id.reset(correlation_token)


def usable_id(value: str | None) -> str | None:
    """A client's id if it is safe to adopt; None to make one up instead."""
    if value is None:
        return None
    value = value.strip()
    return value if _USABLE_ID.fullmatch(value) else None
