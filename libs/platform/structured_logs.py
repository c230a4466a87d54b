"""Log lines as JSON on stdout, one object per line, with the request's ids in each."""

from __future__ import annotations

import structlog


def configure_logging(level: str) -> None:
    """Structured log lines as JSON on stdout, with the request's ids in each one."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
