"""Intake's wiring, one test body on both transports (FastStream's pattern): in memory (TestKafkaBroker, no broker,
runs under -m 'not kafka') and on the session's real broker (with_real).

What intake publishes is read back by its own directive view (a subscriber of the same topic), so the events a
test sees are the ones that went over the transport, not only what the desk kept in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from devtools.waiting import eventually
from services.intake.app import IntakeService, build
from services.intake.arbiter import Arbiter
from services.intake.desk import SERVICE
from shared.contracts.catalogue import DIRECTIVES, key_of
from shared.contracts.directives import DirectiveIssued, DirectiveScope
from shared.runtime.auth import Role
from shared.runtime.kafka import end_offsets
from shared.runtime.settings import KafkaSettings
from tests.integration.intake.conftest import ALONE, READY_TIMEOUT_S, bearer, intake_settings


@dataclass
class Wired:
    """Intake with its broker under TestKafkaBroker, called over its HTTP API."""

    intake: IntakeService
    broker: KafkaBroker

    def client(self, subject: str, *roles: Role, params: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.intake.http),
            base_url="http://intake",
            headers=bearer(subject, *roles),
            params=params,
        )

    def published(self, directive_id: str) -> list[Any]:
        """The directive events for this id that came back over the topic to intake's view, in order."""
        [publisher] = [p for p in self.broker.publishers if p.topic == DIRECTIVES.name]
        bodies = [call.args[0] for call in publisher.mock.call_args_list]
        return [
            DIRECTIVES.adapter.validate_python(b)
            for b in bodies
            if isinstance(b, dict) and b.get("directive_id") == directive_id
        ]

    async def events(self, directive_id: str, count: int) -> list[Any]:
        """The first `count` events for this id, once that many came back (on the real broker they take a while)."""

        def enough() -> list[Any] | None:
            events = self.published(directive_id)
            return events[:count] if len(events) >= count else None

        return await eventually(enough, f"{count} events for {directive_id} back from the topic")


@pytest.fixture
async def wired(twin_kafka: KafkaSettings | None, tmp_path: Path, unique: str) -> AsyncIterator[Wired]:
    real = twin_kafka is not None
    settings = intake_settings(twin_kafka.bootstrap if real else "127.0.0.1:9", tmp_path, f"twin-{unique}")
    intake = build(settings)
    # As start() does, the view is ready once it has read the topic as far as it went now (in memory: empty); on the
    # real broker the arbiter's reader tells when (transaction markers take offsets no record shows).
    ends = await end_offsets(settings.kafka, DIRECTIVES, f"{SERVICE}-{settings.instance}-offsets") if real else {}
    intake.desk.expect(ends)
    reader = Arbiter(settings.kafka, settings.instance, intake.desk) if real else None
    if reader is not None:
        await reader.start(ends)
    try:
        async with TestKafkaBroker(intake.broker, with_real=real) as broker:
            await asyncio.wait_for(intake.wait_ready(), READY_TIMEOUT_S)
            yield Wired(intake, broker)
    finally:
        if reader is not None:
            await reader.stop()


def directive(directive_id: str) -> dict[str, Any]:
    scope = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    return {"directive_id": directive_id, "title": "Twin", "scope": scope}


async def test_a_directive_proposed_and_approved_over_http_is_published_with_both_names(
    wired: Wired, unique: str
) -> None:
    async with wired.client("alice", Role.PROPOSER) as alice:
        proposed = await alice.post("/directives", json=directive(unique))
    assert (proposed.status_code, proposed.json()["state"]) == (202, "proposed")
    async with wired.client("bob", Role.APPROVER) as bob:
        approved = await bob.post(f"/proposals/{proposed.json()['proposal_id']}/approve", json={"reason": "checked"})
    assert (approved.status_code, approved.json()["state"]) == (202, "issued")

    proposal, issued = await wired.events(unique, 2)
    assert (proposal.type, proposal.action, proposal.proposed_by) == ("DirectiveProposed", "issue", "alice")
    assert (issued.type, issued.revision, issued.proposed_by, issued.approved_by) == (
        "DirectiveIssued",
        1,
        "alice",
        ["bob"],
    )
    assert issued.proposal_id == proposal.proposal_id and issued.event_id == approved.json()["event_id"]
    assert [e.type for e in wired.published(unique)] == ["DirectiveProposed", "DirectiveIssued"]  # nothing more


async def test_a_lift_proposed_and_approved_is_published_at_the_revision_in_force(wired: Wired, unique: str) -> None:
    async with wired.client("erin", Role.EMERGENCY, params=ALONE) as erin:
        assert (await erin.post("/directives", json=directive(unique))).status_code == 202
    async with wired.client("alice", Role.PROPOSER) as alice:
        proposed = await alice.post(f"/directives/{unique}/lift", json={"reason": "Order revoked"})
    async with wired.client("bob", Role.APPROVER) as bob:
        approved = await bob.post(f"/proposals/{proposed.json()['proposal_id']}/approve")
    assert (proposed.status_code, approved.status_code, approved.json()["state"]) == (202, 202, "lifted")

    issued, proposal, lifted = await wired.events(unique, 3)
    assert (issued.type, issued.emergency, proposal.action) == ("DirectiveIssued", True, "lift")
    assert (lifted.type, lifted.revision, lifted.reason) == ("DirectiveLifted", 1, "Order revoked")
    assert (lifted.proposed_by, lifted.approved_by, lifted.correlation_id) == ("alice", ["bob"], unique)


async def test_a_directive_another_instance_issued_is_in_the_view_and_amended_as_revision_two(
    wired: Wired, unique: str
) -> None:
    elsewhere = DirectiveIssued(
        producer="intake",
        correlation_id=unique,
        directive_id=unique,
        revision=1,
        title="Issued by another instance",
        scope=DirectiveScope.model_validate(directive(unique)["scope"]),
        emergency=True,
        emergency_reason="twin test",
    )
    await wired.broker.publish(elsewhere, topic=DIRECTIVES.name, key=key_of(DIRECTIVES, elsewhere))
    async with wired.client("vic", Role.VIEWER) as vic:
        shown = await eventually(lambda: _shown(vic, unique), "the view to read the directive")
    assert (shown["revision"], shown["title"]) == (1, "Issued by another instance")

    async with wired.client("erin", Role.EMERGENCY, params=ALONE) as erin:
        amended = await erin.post("/directives", json={**directive(unique), "title": "Amended here"})
    assert (amended.status_code, amended.json()["revision"]) == (202, 2)
    assert [(e.type, e.revision) for e in await wired.events(unique, 2)] == [
        ("DirectiveIssued", 1),
        ("DirectiveIssued", 2),
    ]


async def _shown(client: httpx.AsyncClient, directive_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/directives/{directive_id}")
    return response.json() if response.status_code == 200 else None
