"""Fixtures and helpers of the intake integration tests: intake in-process on the session broker, its HTTP API
served, the directive topic read back."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from devtools.ports import free_port
from services.intake.app import IntakeService, build
from services.intake.settings import IntakeSettings
from shared.contracts.catalogue import DIRECTIVES
from shared.runtime.auth import AuthSettings, LocalIssuer, Role
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings

READY_TIMEOUT_S = 60
# One token issuer for the intake tests; every intake they start trusts it.
ISSUER = LocalIssuer()
_JWKS = ISSUER.write(Path(tempfile.mkdtemp(prefix="countermand-intake-auth-")))
# Tests about something else than four eyes issue and lift at once, as the emergency role acting alone.
ALONE = {"emergency_reason": "integration test"}


def auth_settings() -> AuthSettings:
    return AuthSettings(mode="on", jwks_file=_JWKS, issuer=ISSUER.issuer)


def bearer(subject: str, *roles: Role) -> dict[str, str]:
    """Headers calling as `subject` with these roles."""
    return {"Authorization": f"Bearer {ISSUER.mint(subject, roles)}"}


def as_tester() -> dict[str, str]:
    """Headers of a tester who may do everything (four eyes still apply to them)."""
    return bearer("tester", *Role)


def intake_settings(bootstrap: str, state_dir: Path, instance: str, **settings: Any) -> IntakeSettings:
    return IntakeSettings(
        kafka=KafkaSettings(bootstrap=bootstrap),
        state_dir=state_dir,
        instance=instance,
        http_port=free_port(),
        auth=auth_settings(),
        **settings,
    )


@contextlib.asynccontextmanager
async def running_intake(settings: IntakeSettings) -> AsyncIterator[IntakeService]:
    """Intake started on the real broker and caught up with the directive topic; stopped afterwards."""
    service = build(settings)
    await service.start()
    try:
        await asyncio.wait_for(service.wait_ready(), READY_TIMEOUT_S)
        yield service
    finally:
        await service.stop()


@contextlib.asynccontextmanager
async def serving_http(service: IntakeService) -> AsyncIterator[str]:
    """The service's HTTP API served by uvicorn on its port; yields the base URL."""
    server = service.http_server()
    server.capture_signals = contextlib.nullcontext
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://{service.settings.http_host}:{service.settings.http_port}"
    finally:
        server.should_exit = True
        await task


def asgi_client(service: IntakeService, alone: bool = True) -> httpx.AsyncClient:
    """An HTTP client calling the service's FastAPI app directly as the tester (acting alone unless told not to)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.http),
        base_url="http://intake",
        headers=as_tester(),
        params=ALONE if alone else None,
    )


def http_client(base_url: str, alone: bool = True) -> httpx.AsyncClient:
    """An HTTP client calling intake served over HTTP as the tester (acting alone unless told not to)."""
    return httpx.AsyncClient(base_url=base_url, timeout=30, headers=as_tester(), params=ALONE if alone else None)


async def directive_records(bootstrap: str, directive_id: str) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record on the directive topic keyed by this id, read to the current end."""
    key = directive_id.encode()
    return [
        (r.key, r.value)
        async for r in records_to_end(KafkaSettings(bootstrap=bootstrap), DIRECTIVES, "tests")
        if r.key == key
    ]


async def directive_events(bootstrap: str, directive_id: str) -> list[Any]:
    """The directive events published for this id, parsed with the topic's contract type."""
    return [DIRECTIVES.adapter.validate_json(value) for _, value in await directive_records(bootstrap, directive_id)]
