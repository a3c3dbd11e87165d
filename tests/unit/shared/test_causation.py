"""Traces that follow causation: a record produced outside a live span continues its cause's or its directive's
trace; inside one, the live span wins. HTTP requests get a SERVER span continuing the caller's traceparent."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.runtime.causation import TraceBook, producing
from shared.runtime.tracing import traced_http


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider, spans


def _message(event: str, cause: str | None = None, directive: str | None = "D-1") -> SimpleNamespace:
    return SimpleNamespace(event_id=event, causation_id=cause, correlation_id=directive)


def _current_trace() -> int:
    return trace.get_current_span().get_span_context().trace_id


def test_outside_a_span_a_message_continues_the_trace_of_its_cause() -> None:
    provider, _ = _provider()
    book = TraceBook()
    with provider.get_tracer("t").start_as_current_span("consume command") as span:
        with producing(_message("ack-1", directive="D-7"), book):
            pass
    with producing(_message("failure-1", cause="ack-1", directive=None), book):  # a background loop: no span
        assert _current_trace() == span.get_span_context().trace_id
    assert _current_trace() == 0, "the context is restored afterwards"


def test_without_a_known_cause_the_directive_trace_is_used() -> None:
    provider, _ = _provider()
    book = TraceBook()
    with provider.get_tracer("t").start_as_current_span("assess") as span:
        with producing(_message("assessed-1"), book):
            pass
    with producing(_message("overdue-1", cause="never-seen"), book):
        assert _current_trace() == span.get_span_context().trace_id


def test_a_live_span_wins_over_what_the_book_remembers() -> None:
    provider, _ = _provider()
    book = TraceBook()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("first request"), producing(_message("issued-1"), book):
        pass
    with tracer.start_as_current_span("amendment request") as amendment:
        with producing(_message("issued-2", cause="issued-1"), book):
            assert _current_trace() == amendment.get_span_context().trace_id


def test_a_message_with_nothing_known_starts_no_context() -> None:
    with producing(_message("heartbeat-1", directive=None), TraceBook()):
        assert _current_trace() == 0


def test_the_book_forgets_the_oldest_beyond_its_limit() -> None:
    provider, _ = _provider()
    book = TraceBook(limit=3)
    with provider.get_tracer("t").start_as_current_span("s"):
        for n in range(5):
            with producing(_message(f"e{n}", directive=None), book):
                pass
    assert len(book) == 3
    assert book.recall("event:e0") is None and book.recall("event:e4") is not None


async def test_an_http_request_is_a_server_span_continuing_the_callers_trace() -> None:
    provider, spans = _provider()
    api = FastAPI()
    inside: list[int] = []

    @api.post("/proposals/{proposal_id}/approve")
    async def approve(proposal_id: str) -> dict:
        inside.append(_current_trace())
        return {"id": proposal_id}

    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    transport = httpx.ASGITransport(app=traced_http(api, provider))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        reply = await client.post("/proposals/p-1/approve", headers={"traceparent": caller})
    assert reply.status_code == 200
    (span,) = spans.get_finished_spans()
    assert span.kind is trace.SpanKind.SERVER
    assert span.name == "POST /proposals/{proposal_id}/approve"
    assert span.attributes["http.response.status_code"] == 200
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    assert inside == [span.context.trace_id], "the span is current while the route runs"


def test_without_tracing_the_app_is_served_as_it_is() -> None:
    api = FastAPI()
    assert traced_http(api, None) is api
