"""Log lines as JSON on stdout, one object per line, with the request's ids in each
(and its trace's, when traces are on)."""

from __future__ import annotations

import structlog

from libs.platform.tracing import add_trace_ids


def configure_logging(level: str) -> None:
    """Structured log lines as JSON on stdout, with the request's ids in each one."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
