"""structlog configuration: JSON when not a terminal, readable otherwise; ids bound per message."""

from __future__ import annotations

import logging
import sys

import structlog

from shared.runtime.settings import LogSettings


def configure_logging(settings: LogSettings, service: str) -> structlog.stdlib.BoundLogger:
    """Configure structlog and the stdlib root logger once; return the service's logger."""
    as_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    level = getattr(logging, settings.level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=max(level, logging.WARNING), stream=sys.stderr, format="%(name)s %(levelname)s %(message)s"
    )
    return structlog.get_logger(service=service)


def bind_message_ids(correlation_id: str | None, event_id: str | None) -> None:
    """Bind the directive (correlation) id and event id to every log line of this message."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id, event_id=event_id)
