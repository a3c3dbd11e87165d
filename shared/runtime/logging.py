"""structlog configuration: JSON when not a terminal, readable otherwise; ids bound per message.

Libraries' stdlib logging (aiokafka, uvicorn, faststream, asyncio) goes through the same renderer
(structlog's ProcessorFormatter on the root handler), and so do uncaught exceptions (sys.excepthook,
threading.excepthook, the running event loop's exception handler): one JSON object per line, a traceback
as its `exception` field.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from types import TracebackType
from typing import Any

import structlog

from shared.runtime.settings import LogSettings

CRASH = "uncaught exception"
# Loggers that libraries give a handler of their own (faststream's writes plain text to stderr and does not
# propagate): emptied and propagating, so their records reach the root's renderer like any other.
LIBRARY_LOGGERS = ("faststream", "faststream.access", "uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka")


def configure_logging(settings: LogSettings, service: str) -> structlog.stdlib.BoundLogger:
    """Configure structlog, the stdlib root logger and the crash hooks once; return the service's logger."""
    as_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    level = getattr(logging, settings.level)
    common = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*common, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(service, common, renderer, max(level, logging.WARNING))
    log = structlog.get_logger(service=service)
    _hook_crashes(log)
    return log


def _route_stdlib(service: str, common: list, renderer: Any, level: int) -> None:
    """Every stdlib record (libraries' loggers propagate to the root) rendered as structlog renders its own."""

    def add_service(_logger: Any, _name: str, event: dict) -> dict:
        event.setdefault("service", service)
        return event

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*common, structlog.stdlib.add_logger_name, add_service],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers, library.propagate = [], True


def _hook_crashes(log: Any) -> None:
    """Uncaught exceptions in the main thread, other threads and the running event loop, logged as one line."""

    def main_thread(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, trace)
            return
        log.critical(CRASH, exc_info=(kind, error, trace))

    def other_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            log.critical(CRASH, thread=getattr(args.thread, "name", None), exc_info=args.exc_value)

    sys.excepthook = main_thread
    threading.excepthook = other_thread
    try:
        asyncio.get_running_loop().set_exception_handler(_loop_handler(log))
    except RuntimeError:  # no loop yet: the service sets it from inside its loop
        pass


def _loop_handler(log: Any):
    def handle(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        log.error(
            context.get("message", "unhandled exception in the event loop"),
            task=repr(context.get("task") or context.get("future") or "")[:200] or None,
            exc_info=error if error is not None else False,
        )

    return handle


def bind_message_ids(correlation_id: str | None, event_id: str | None) -> None:
    """Bind the directive (correlation) id and event id to every log line of this message."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id, event_id=event_id)
