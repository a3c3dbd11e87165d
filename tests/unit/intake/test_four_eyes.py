"""Four eyes over HTTP: who may propose, approve, reject or act alone; each refusal says why, publishes nothing."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from structlog.testing import capture_logs

from services.intake.api import create_api
from services.intake.desk import DirectiveDesk
from shared.contracts.directives import DirectiveIssued, DirectiveLifted, DirectiveProposed, ProposalApproved
from shared.runtime.auth import Role
from tests.unit.intake.fakes import Callers, FakeTopic

P, A, V, E = Role.PROPOSER, Role.APPROVER, Role.VIEWER, Role.EMERGENCY


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Intake:
    """Intake's API over a desk with a fake topic, a movable clock and a local token issuer."""

    def __init__(self, folder: Path, approvals_needed: int = 1) -> None:
        self.topic = FakeTopic()
        self.clock = Clock()
        self.callers = Callers(folder)
        self.desk = DirectiveDesk(self.topic.publish, approvals_needed=approvals_needed, clock=self.clock)
        self.desk.expect({})
        self.api = create_api(self.desk, self.callers.guard)

    async def call(self, method: str, path: str, who: tuple[str, tuple[Role, ...]] | None, **kwargs: Any):
        headers = {**(self.callers.headers(who[0], *who[1]) if who else {}), **kwargs.pop("headers", {})}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.api), base_url="http://t") as http:
            return await http.request(method, path, headers=headers, **kwargs)

    async def propose(self, who: str = "alice", directive_id: str = "EXP-1") -> str:
        answer = await self.call("POST", "/directives", (who, (P,)), json=body(directive_id))
        assert answer.status_code == 202, answer.text
        return answer.json()["proposal_id"]


def body(directive_id: str = "EXP-1", **scope: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    values.update(scope)
    return {"directive_id": directive_id, "title": "t", "scope": values}


def refusal(answer: httpx.Response) -> str:
    data = answer.json()
    return data["problems"][0]["message"] if data.get("problems") else data["error"]


def refusals_logged(logs: list[dict]) -> list[tuple[int, str | None, str]]:
    """(status, subject, reason) of each refusal intake logged."""
    return [(e["status"], e.get("subject"), e["reason"]) for e in logs if e["event"] == "request refused"]


@pytest.fixture
def intake(tmp_path: Path) -> Intake:
    return Intake(tmp_path)


async def test_a_proposal_approved_by_another_person_issues_the_directive_naming_both(intake: Intake) -> None:
    proposal_id = await intake.propose("alice")
    pending = await intake.call("GET", "/proposals", ("vic", (V,)))
    assert [p["proposal_id"] for p in pending.json()] == [proposal_id]
    answer = await intake.call("POST", f"/proposals/{proposal_id}/approve", ("bob", (A,)), json={"reason": "checked"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "issued" and answer.json()["approved_by"] == ["bob"]
    proposed, issued = intake.topic.events
    assert isinstance(proposed, DirectiveProposed) and isinstance(issued, DirectiveIssued)
    assert (issued.revision, issued.proposal_id, issued.proposed_by, issued.approved_by, issued.emergency) == (
        1,
        proposal_id,
        "alice",
        ["bob"],
        False,
    )
    assert issued.proposed_at == proposed.occurred_at and issued.causation_id == proposed.event_id
    assert (await intake.call("GET", "/proposals", ("vic", (V,)))).json() == []
    shown = (await intake.call("GET", "/directives/EXP-1", ("vic", (V,)))).json()
    assert (shown["proposed_by"], shown["approved_by"]) == ("alice", ["bob"])


async def test_a_proposer_cannot_approve_their_own_proposal(intake: Intake) -> None:
    proposal_id = await intake.propose("alice")
    with capture_logs() as logs:
        answer = await intake.call("POST", f"/proposals/{proposal_id}/approve", ("alice", (P, A)))
    assert answer.status_code == 403
    assert "alice proposed" in refusal(answer) and "another person must" in refusal(answer)
    assert [e.type for e in intake.topic.events] == ["DirectiveProposed"]
    assert refusals_logged(logs) == [(403, "alice", refusal(answer))]
    assert (await intake.call("GET", "/proposals", ("vic", (V,)))).json()[0]["approved_by"] == []


async def test_approvals_must_come_from_distinct_people(tmp_path: Path) -> None:
    intake = Intake(tmp_path, approvals_needed=2)
    proposal_id = await intake.propose("alice")
    first = await intake.call("POST", f"/proposals/{proposal_id}/approve", ("bob", (A,)))
    again = await intake.call("POST", f"/proposals/{proposal_id}/approve", ("bob", (A,)))
    assert (first.status_code, first.json()["state"], first.json()["approved_by"]) == (202, "proposed", ["bob"])
    assert again.status_code == 409 and "bob already approved" in refusal(again)
    assert [e.type for e in intake.topic.events] == ["DirectiveProposed", "ProposalApproved"]
    last = await intake.call("POST", f"/proposals/{proposal_id}/approve", ("carol", (A,)))
    assert last.json()["state"] == "issued"
    assert intake.topic.events[-1].approved_by == ["bob", "carol"]


async def test_an_approval_after_the_proposal_expired_is_refused(intake: Intake) -> None:
    proposal_id = await intake.propose("alice")
    intake.clock.now += timedelta(hours=24)
    with capture_logs() as logs:
        answer = await intake.call("POST", f"/proposals/{proposal_id}/approve", ("bob", (A,)))
    assert answer.status_code == 409 and "expired at 2026-11-28T09:00:00+00:00" in refusal(answer)
    assert [e.type for e in intake.topic.events] == ["DirectiveProposed"]
    assert refusals_logged(logs) == [(409, "bob", refusal(answer))]
    assert (await intake.call("GET", "/proposals", ("vic", (V,)))).json() == []
    # an expired proposal no longer blocks a new one for the same directive
    assert await intake.propose("alice") != proposal_id


async def test_approving_an_unknown_proposal_is_404_naming_it(intake: Intake) -> None:
    answer = await intake.call("POST", "/proposals/p-000000000000/approve", ("bob", (A,)))
    assert (answer.status_code, refusal(answer)) == (404, "proposal 'p-000000000000' is not known")
    assert intake.topic.events == []


async def test_a_rejection_needs_a_reason_is_recorded_and_closes_the_proposal(intake: Intake) -> None:
    proposal_id = await intake.propose("alice")
    bare = await intake.call("POST", f"/proposals/{proposal_id}/reject", ("bob", (A,)), json={})
    assert bare.status_code == 422 and bare.json()["problems"][0]["field"] == "reason"
    rejected = await intake.call("POST", f"/proposals/{proposal_id}/reject", ("bob", (A,)), json={"reason": "too wide"})
    assert (rejected.status_code, rejected.json()["state"]) == (202, "rejected")
    late = await intake.call("POST", f"/proposals/{proposal_id}/approve", ("carol", (A,)))
    assert late.status_code == 409 and "already rejected" in refusal(late)
    assert [e.type for e in intake.topic.events] == ["DirectiveProposed", "ProposalRejected"]
    event = intake.topic.events[-1]
    assert (event.rejected_by, event.reason) == ("bob", "too wide")


async def test_only_an_approver_or_the_proposer_may_reject(intake: Intake) -> None:
    proposal_id = await intake.propose("alice")
    other = await intake.call("POST", f"/proposals/{proposal_id}/reject", ("pat", (P,)), json={"reason": "no"})
    assert other.status_code == 403 and "only an approver or its proposer (alice)" in refusal(other)
    withdrawn = await intake.call("POST", f"/proposals/{proposal_id}/reject", ("alice", (P,)), json={"reason": "typo"})
    assert withdrawn.status_code == 202


async def test_a_second_open_proposal_for_one_directive_is_refused(intake: Intake) -> None:
    first = await intake.propose("alice")
    answer = await intake.call("POST", "/directives", ("pat", (P,)), json=body(models=["mythos-5"]))
    assert answer.status_code == 409 and f"open proposal {first}" in refusal(answer)


async def test_a_lift_is_proposed_and_approved_too(intake: Intake) -> None:
    await intake.call("POST", f"/proposals/{await intake.propose('alice')}/approve", ("bob", (A,)))
    lift = await intake.call("POST", "/directives/EXP-1/lift", ("carol", (P,)), json={"reason": "revoked"})
    assert (lift.status_code, lift.json()["state"], lift.json()["revision"]) == (202, "proposed", 1)
    assert not isinstance(intake.topic.events[-1], DirectiveLifted)
    done = await intake.call("POST", f"/proposals/{lift.json()['proposal_id']}/approve", ("bob", (A,)))
    lifted = intake.topic.events[-1]
    assert done.json()["state"] == "lifted" and isinstance(lifted, DirectiveLifted)
    assert (lifted.reason, lifted.proposed_by, lifted.approved_by) == ("revoked", "carol", ["bob"])


async def test_an_approval_of_a_directive_that_changed_meanwhile_is_refused(intake: Intake) -> None:
    proposal_id = await intake.propose("alice")
    alone = await intake.call(
        "POST", "/directives", ("erin", (E,)), json=body(models=["mythos-5"]), params={"emergency_reason": "court"}
    )
    assert alone.json()["state"] == "issued"
    answer = await intake.call("POST", f"/proposals/{proposal_id}/approve", ("bob", (A,)))
    assert answer.status_code == 409 and "revision 0 then, 1 now" in refusal(answer)


async def test_the_emergency_role_issues_alone_flagged_with_its_reason(intake: Intake) -> None:
    answer = await intake.call(
        "POST", "/directives", ("erin", (E,)), json=body(), params={"emergency_reason": "court order at 3am"}
    )
    assert (answer.status_code, answer.json()["state"], answer.json()["emergency"]) == (202, "issued", True)
    [issued] = intake.topic.events
    assert (issued.emergency, issued.emergency_reason, issued.proposed_by, issued.approved_by) == (
        True,
        "court order at 3am",
        "erin",
        [],
    )


async def test_an_emergency_without_a_reason_is_refused(intake: Intake) -> None:
    answer = await intake.call("POST", "/directives", ("erin", (E,)), json=body(), params={"emergency_reason": " "})
    assert answer.status_code == 422 and answer.json()["problems"][0]["field"] == "emergency_reason"
    assert intake.topic.events == []


async def test_acting_alone_without_the_emergency_role_is_403(intake: Intake) -> None:
    answer = await intake.call("POST", "/directives", ("alice", (P,)), json=body(), params={"emergency_reason": "x"})
    assert (answer.status_code, refusal(answer)) == (403, "needs role emergency to act without an approval")
    assert intake.topic.events == []


async def test_an_approval_repeated_under_its_key_is_answered_once(tmp_path: Path) -> None:
    intake = Intake(tmp_path, approvals_needed=2)
    proposal_id = await intake.propose("alice")
    path, key = f"/proposals/{proposal_id}/approve", {"Idempotency-Key": "approve-1"}
    first = await intake.call("POST", path, ("bob", (A,)), headers=key)
    again = await intake.call("POST", path, ("bob", (A,)), headers=key)
    other = await intake.call("POST", path, ("carol", (A,)), headers=key)
    assert (first.status_code, again.status_code, again.headers.get("idempotent-replayed")) == (202, 202, "true")
    assert again.json() == first.json()
    assert other.status_code == 422 and "Idempotency-Key 'approve-1'" in refusal(other)
    assert [type(e) for e in intake.topic.events] == [DirectiveProposed, ProposalApproved]


async def test_proposals_survive_a_restart(intake: Intake, tmp_path: Path) -> None:
    proposal_id = await intake.propose("alice")
    restarted = Intake(tmp_path / "again")
    restarted.callers = intake.callers
    restarted.api = create_api(restarted.desk, intake.callers.guard)
    for offset, event in enumerate(intake.topic.events):
        restarted.desk.record(event, 0, offset)
    own = await restarted.call("POST", f"/proposals/{proposal_id}/approve", ("alice", (A,)))
    assert own.status_code == 403
    answer = await restarted.call("POST", f"/proposals/{proposal_id}/approve", ("bob", (A,)))
    assert answer.json()["state"] == "issued"


# --- who is calling ------------------------------------------------------------------------------------------


def _unsigned(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'kid': 'local-1'})}.{part(claims)}."


@pytest.mark.parametrize(
    ("claims", "status", "says"),
    [
        ({"ttl_s": -120}, 401, "token expired"),
        ({"nbf_in_s": 600}, 401, "token not valid yet (nbf)"),
        ({"aud": "billing"}, 401, "token is for another audience (expected 'countermand')"),
        ({"alg_none": True}, 401, "token algorithm 'none' is not allowed"),
        ({"roles": (V,)}, 403, "needs role emergency or proposer"),
        (None, 401, "missing credential: send Authorization: Bearer <token>"),
    ],
    ids=["expired", "not-yet-valid", "other-audience", "alg-none", "wrong-role", "no-token"],
)
async def test_a_bad_credential_is_refused_naming_why_and_nothing_is_published(
    intake: Intake, claims: dict | None, status: int, says: str
) -> None:
    headers = {}
    if claims is not None:
        roles = claims.pop("roles", (P,))
        alg_none = claims.pop("alg_none", False)
        if "nbf_in_s" in claims:  # computed now, not when the test was collected
            claims["nbf"] = int(time.time()) + claims.pop("nbf_in_s")
        token = intake.callers.issuer.mint("mallory", roles, **claims)
        headers = {"Authorization": f"Bearer {_unsigned(token) if alg_none else token}"}
    for path in ("/directives", "/directives/EXP-1/lift"):
        answer = await intake.call("POST", path, None, json=body(), headers=headers)
        assert (answer.status_code, refusal(answer)) == (status, says), path
    assert intake.topic.events == []


async def test_every_endpoint_but_health_needs_a_credential(intake: Intake) -> None:
    for method, path in [
        ("GET", "/directives"),
        ("GET", "/directives/EXP-1"),
        ("GET", "/proposals"),
        ("GET", "/proposals/p-000000000000"),
        ("POST", "/proposals/p-000000000000/approve"),
        ("POST", "/proposals/p-000000000000/reject"),
    ]:
        assert (await intake.call(method, path, None)).status_code == 401, path
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await intake.call("GET", path, None)).status_code == 200, path


async def test_a_viewer_reads_but_neither_proposes_nor_approves(intake: Intake) -> None:
    proposal_id = await intake.propose("alice")
    assert (await intake.call("GET", f"/proposals/{proposal_id}", ("vic", (V,)))).status_code == 200
    approve = await intake.call("POST", f"/proposals/{proposal_id}/approve", ("vic", (V,)))
    assert (approve.status_code, refusal(approve)) == (403, "needs role approver")
