"""Composition root of intake: broker, directive view, desk and HTTP API, built from settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import uvicorn
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from services.intake.api import create_api
from services.intake.desk import SERVICE, DirectiveDesk, DirectiveEvent
from services.intake.settings import IntakeSettings
from services.intake.view import register_view
from shared.contracts.catalogue import DIRECTIVES
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.broker import declare_publisher, emit, make_broker
from shared.runtime.http import http_server
from shared.runtime.kafka import end_offsets
from shared.runtime.record_signing import record_signer
from shared.runtime.signing import Signer
from shared.runtime.tracing import traced_http, tracer_provider


@dataclass
class IntakeService:
    """Intake, wired: start() connects and starts reading the directive topic; stop() disconnects."""

    settings: IntakeSettings
    broker: KafkaBroker
    http: FastAPI
    desk: DirectiveDesk
    traces: TracerProvider | None = None  # a SERVER span per request, parent of the directive's trace

    async def start(self) -> None:
        # End offsets first: the view is ready once it has read at least this far.
        self.desk.expect(
            await end_offsets(self.settings.kafka, DIRECTIVES, f"{SERVICE}-{self.settings.instance}-offsets")
        )
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def wait_ready(self, poll_s: float = 0.1) -> None:
        """Return once the directive view has caught up."""
        while not self.desk.ready:
            await asyncio.sleep(poll_s)

    def http_server(self) -> uvicorn.Server:
        """A uvicorn server for the HTTP API on the configured address (run it with `await serve()`)."""
        return http_server(traced_http(self.http, self.traces), self.settings.http_host, self.settings.http_port)


def build(settings: IntakeSettings | None = None) -> IntakeService:
    """Build intake from settings; nothing connects until start()."""
    settings = settings or IntakeSettings()
    traces = tracer_provider(settings.telemetry, SERVICE)
    broker, desk = _wired(settings, record_signer(settings.signing, SERVICE), traces)
    return IntakeService(settings, broker, create_api(desk, Guard(settings.auth, SERVICE)), desk, traces)


def _wired(
    settings: IntakeSettings, signer: Signer | None, traces: TracerProvider | None = None
) -> tuple[KafkaBroker, DirectiveDesk]:
    # Intake consumes only its own view of the directive topic (see view.py): no dead-letter topic.
    broker = make_broker(settings, SERVICE, dead_letters=False, traces=traces)
    publisher = declare_publisher(
        broker, DIRECTIVES, "Directives proposed, approved, rejected, issued, amended and lifted."
    )

    async def publish(event: DirectiveEvent) -> None:
        await emit(publisher, DIRECTIVES, event, signer=signer)  # impact acts only on what intake signed

    desk = DirectiveDesk(
        publish,
        approvals_needed=settings.approvals_needed,
        proposal_ttl=timedelta(seconds=settings.proposal_ttl_s),
    )
    register_view(broker, desk)
    return broker, desk


def specification(settings: IntakeSettings | None = None) -> AsyncAPI:
    """The AsyncAPI document of intake (its Kafka side: no HTTP API, so no credentials needed)."""
    return AsyncAPI(
        _wired(settings or IntakeSettings(auth=AuthSettings(mode="off")), None)[0],
        title="Countermand intake",
        version="1",
        description="Turns directives submitted over HTTP or the CLI into directive events.",
    )
