"""Traces that follow causation: a record produced outside a consumed message's context (a background loop, a
batch handler) continues the trace of the event that caused it, else of its directive, as this process last saw it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faststream import BaseMiddleware
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


class TraceBook:
    """Recent span contexts (ids only: no span is kept alive) by event id and by directive id; bounded, the oldest
    forgotten first."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._contexts: OrderedDict[str, SpanContext] = OrderedDict()

    def remember(self, key: str | None, found: SpanContext) -> None:
        if not key or not found.is_valid:
            return
        self._contexts[key] = found
        self._contexts.move_to_end(key)
        if len(self._contexts) > self.limit:
            self._contexts.popitem(last=False)

    def recall(self, *keys: str | None) -> Context | None:
        """A context whose parent is the span of the first key known."""
        for key in keys:
            if key and (found := self._contexts.get(key)) is not None:
                return trace.set_span_in_context(NonRecordingSpan(found))
        return None

    def __len__(self) -> int:
        return len(self._contexts)


BOOK = TraceBook()  # one per process, like the metrics registry: filled only while tracing is on


def _event(event_id: str | None) -> str | None:
    return f"event:{event_id}" if event_id else None


def _directive(directive_id: str | None) -> str | None:
    return f"directive:{directive_id}" if directive_id else None


def live() -> bool:
    """Whether a span is current (a request or a consumed message is being handled)."""
    return trace.get_current_span().get_span_context().is_valid


@contextmanager
def producing(message: Any, book: TraceBook = BOOK) -> Iterator[None]:
    """Publish `message` (a contract message) in the trace it belongs to.

    Inside a live span that span's trace, remembered for the message's event and directive; otherwise the trace of
    its cause (`causation_id`), else of its directive (`correlation_id`), when this process has seen either.
    """
    event = _event(getattr(message, "event_id", None))
    directive = _directive(getattr(message, "correlation_id", None))
    if live():
        current = trace.get_current_span().get_span_context()
        book.remember(event, current)
        book.remember(directive, current)
        yield
        return
    found = book.recall(_event(getattr(message, "causation_id", None)), directive)
    if found is None:
        yield
        return
    book.remember(event, trace.get_current_span(found).get_span_context())
    token = context.attach(found)
    try:
        yield
    finally:
        context.detach(token)


def causation_middleware(book: TraceBook = BOOK) -> Any:
    """A broker middleware (placed inside FastStream's telemetry middleware) that remembers each consumed record's
    trace context by its event id (FastStream's correlation id: `emit` sets it to the event id).

    A batch is handled outside any one record's trace: what it produces follows each message's cause or directive.
    """

    class CausationMiddleware(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            if not msg.batch_headers:
                book.remember(_event(msg.correlation_id), trace.get_current_span().get_span_context())
                return await call_next(msg)
            for headers in msg.batch_headers:
                remote = trace.get_current_span(_PROPAGATOR.extract(headers)).get_span_context()
                book.remember(_event(headers.get("correlation_id")), remote)
            token = context.attach(Context())
            try:
                return await call_next(msg)
            finally:
                context.detach(token)

    return CausationMiddleware
