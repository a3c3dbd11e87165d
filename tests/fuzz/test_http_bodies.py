"""Fuzzed HTTP requests to intake (propose, lift, approve, reject), impact's dry runs and the agent's access API,
in process: every answer is below 500 and a refusal names its problem; no exception escapes the app."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from services.agent.http import access_api
from services.impact.api import create_api as impact_api
from services.intake.api import create_api as intake_api
from services.intake.desk import DirectiveDesk
from shared.runtime.auth import AuthSettings, Guard, LocalIssuer, Role
from tests.fuzz.strategies import VALID, directive_bodies, json_values
from tests.unit.agent.builders import held_checker
from tests.unit.agent.test_http_auth import NOW, Keys
from tests.unit.impact.test_preview_api import FakeState, people
from tests.unit.intake.fakes import FakeTopic

FOLDER = Path(tempfile.mkdtemp(prefix="countermand-fuzz-http-"))
ISSUER = LocalIssuer()
GUARD_SETTINGS = AuthSettings(mode="on", jwks_file=ISSUER.write(FOLDER / "tokens"), issuer=ISSUER.issuer)
CALLERS = {
    "alice": {"Authorization": f"Bearer {ISSUER.mint('alice', [Role.PROPOSER], ttl_s=86400)}"},
    "bob": {"Authorization": f"Bearer {ISSUER.mint('bob', [Role.APPROVER, Role.VIEWER], ttl_s=86400)}"},
    "erin": {"Authorization": f"Bearer {ISSUER.mint('erin', [Role.EMERGENCY], ttl_s=86400)}"},
}
CONTENT_TYPES = st.sampled_from(["application/json", "text/plain", "application/x-yaml", "", "application/json; x"])
bodies = st.one_of(
    st.binary(max_size=2048),
    directive_bodies.map(lambda b: json.dumps(b).encode()),
    json_values.map(lambda b: json.dumps(b).encode()),
)
path_ids = st.sampled_from(["EXP-1", "", "%00", "a" * 200, "..", "p-0"]) | st.text(max_size=20)
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def fresh(directive_id: str | None = None) -> dict[str, Any]:
    """The valid directive under a new id (the desk is shared by the examples), or under `directive_id`."""
    return {**VALID, "directive_id": directive_id or f"EXP-{uuid.uuid4().hex[:12]}"}


def named_refusal(answer: httpx.Response) -> None:
    """Below 500; a 4xx says what is wrong in a JSON body."""
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        body = answer.json()
        assert body.get("error") or body.get("detail") or body.get("problems"), body


async def send(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.request(method, path, **kwargs)


def _intake() -> tuple[Any, DirectiveDesk]:
    desk = DirectiveDesk(FakeTopic().publish)
    desk.expect({})
    return intake_api(desk, Guard(GUARD_SETTINGS, "intake")), desk


# One app per service for the whole module (building one per example costs more than the example): intake's desk
# accumulates what the examples propose, which only widens the states the later examples meet.
INTAKE, DESK = _intake()


def intake() -> tuple[Any, DirectiveDesk]:
    return INTAKE, DESK


@given(bodies, CONTENT_TYPES, st.sampled_from(list(CALLERS)), st.none() | header_values, st.booleans())
@example(b"\xef\xbb\xbf" + json.dumps(VALID).encode(), "application/json", "alice", None, False)
@example(b"[" * 100_000, "application/json", "alice", None, False)
@example(
    json.dumps({**VALID, "scope": {**VALID["scope"], "selector": {"kind": [], "any_of": []}}}).encode(),
    "application/json",
    "alice",
    None,
    False,
)  # was a TypeError in the selector limits: a 500
@example(b'{"n": ' + b"1" * 5000 + b"}", "application/json", "alice", None, False)
async def test_a_proposal_body_is_accepted_or_refused_by_name(
    body: bytes, content_type: str, caller: str, key: str | None, emergency: bool
) -> None:
    app, _ = intake()
    headers = {**CALLERS[caller], "content-type": content_type, **({"Idempotency-Key": key} if key else {})}
    params = {"emergency_reason": "fuzz"} if emergency else {}
    named_refusal(await send(app, "POST", "/directives", content=body, headers=headers, params=params))


@given(path_ids, bodies, st.sampled_from(list(CALLERS)))
async def test_a_lift_is_accepted_or_refused_by_name(directive_id: str, body: bytes, caller: str) -> None:
    app, _ = intake()
    await send(
        app, "POST", "/directives", json=fresh("EXP-1"), headers=CALLERS["erin"], params={"emergency_reason": "x"}
    )
    path = f"/directives/{quote(directive_id, safe='')}/lift"
    named_refusal(
        await send(app, "POST", path, content=body, headers={**CALLERS[caller], "content-type": "application/json"})
    )


@given(st.sampled_from(["approve", "reject"]), st.booleans(), bodies, st.sampled_from(list(CALLERS)))
async def test_an_approval_or_rejection_is_accepted_or_refused_by_name(
    verb: str, known: bool, body: bytes, caller: str
) -> None:
    app, _ = intake()
    proposed = (await send(app, "POST", "/directives", json=fresh(), headers=CALLERS["alice"])).json()
    proposal = proposed["proposal_id"] if known else "p-unknown"
    answer = await send(
        app,
        "POST",
        f"/proposals/{proposal}/{verb}",
        content=body,
        headers={**CALLERS[caller], "content-type": "application/json"},
    )
    named_refusal(answer)


@given(st.sampled_from(["/directives/preview", "/directives/EXP-1/lift/preview"]), bodies, CONTENT_TYPES)
async def test_a_dry_run_is_answered_or_refused_by_name(path: str, body: bytes, content_type: str) -> None:
    app = IMPACT
    named_refusal(await send(app, "POST", path, content=body, headers={**CALLERS["bob"], "content-type": content_type}))


(FOLDER / "agent").mkdir()
KEYS = Keys(FOLDER / "agent")
IMPACT = impact_api(FakeState(people()), Guard(GUARD_SETTINGS, "impact"))
_checker, _state = held_checker(True)
AGENT = access_api(_checker, _state.describe, lambda: NOW, None, KEYS.guard)


@given(
    st.dictionaries(st.sampled_from(["user", "model", "x"]), header_values, max_size=3),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=120),
    st.sampled_from(["gateway", "viewer", "none", "garbage"]),
    header_values,
)
@example({"user": "4294967296", "model": "fable-5"}, "", "gateway", "")
@example({"user": "-1", "model": "fable-5"}, "", "gateway", "")
@example({"user": "1" * 400, "model": "fable-5"}, "", "gateway", "")
async def test_an_access_check_is_answered_or_refused_by_name(
    params: dict, raw_query: str, who: str, garbage: str
) -> None:
    app = AGENT
    headers = {"gateway": {"X-API-Key": KEYS.gateway}, "viewer": {"X-API-Key": KEYS.viewer}, "none": {}}.get(
        who, {"X-API-Key": garbage}
    )
    named_refusal(await send(app, "GET", "/v1/access", params=params, headers=headers))
    named_refusal(await send(app, "GET", f"/v1/access?{raw_query}", headers=headers))
