"""Four eyes on the real broker: a proposal survives a restart and is the same proposal on every instance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.waiting import eventually
from services.intake.app import IntakeService
from shared.contracts.directives import DirectiveIssued, DirectiveProposed
from shared.runtime.auth import Role
from tests.integration.intake.conftest import bearer, directive_events, intake_settings, running_intake

pytestmark = pytest.mark.kafka


def directive(directive_id: str) -> dict[str, Any]:
    scope = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    return {"directive_id": directive_id, "title": "Four eyes", "scope": scope}


def client(service: IntakeService, subject: str, *roles: Role) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.http), base_url="http://intake", headers=bearer(subject, *roles)
    )


async def test_a_proposal_survives_a_restart_and_is_approved_on_another_instance(
    bootstrap: str, tmp_path: Path, unique: str
) -> None:
    async with running_intake(intake_settings(bootstrap, tmp_path, f"{unique}-1")) as first:
        async with client(first, "alice", Role.PROPOSER) as alice:
            proposed = (await alice.post("/directives", json=directive(unique))).json()
    assert proposed["state"] == "proposed"
    async with (
        running_intake(intake_settings(bootstrap, tmp_path, f"{unique}-2")) as second,
        running_intake(intake_settings(bootstrap, tmp_path, f"{unique}-3")) as third,
    ):
        async with client(second, "vic", Role.VIEWER) as vic:
            pending = (await vic.get("/proposals")).json()
        assert proposed["proposal_id"] in [p["proposal_id"] for p in pending]
        async with client(third, "alice", Role.APPROVER) as alice:
            own = await alice.post(f"/proposals/{proposed['proposal_id']}/approve")
        assert own.status_code == 403
        async with client(third, "bob", Role.APPROVER) as bob:
            approved = await bob.post(f"/proposals/{proposed['proposal_id']}/approve", json={"reason": "checked"})
        assert (approved.status_code, approved.json()["state"]) == (202, "issued")

        await eventually(lambda: _issued(second, unique), "the other instance to see the approval", timeout=30)
        async with client(second, "carol", Role.APPROVER) as carol:
            late = await carol.post(f"/proposals/{proposed['proposal_id']}/approve")
        assert late.status_code == 409 and "already approved" in late.json()["error"]
    events = await directive_events(bootstrap, unique)
    assert [type(e) for e in events] == [DirectiveProposed, DirectiveIssued]
    assert (events[1].proposed_by, events[1].approved_by, events[1].proposal_id) == (
        "alice",
        ["bob"],
        proposed["proposal_id"],
    )


def _issued(service: IntakeService, directive_id: str) -> bool:
    return any(e.directive_id == directive_id and e.state == "issued" for e in service.desk.book.entries())
