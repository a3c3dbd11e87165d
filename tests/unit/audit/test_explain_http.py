"""`GET /v1/explain` for the auditor role: refusals as everywhere (401, 403), health and metrics open, the same
JSON as `countermand audit explain --json`, and a clear 4xx for an unknown user or model or a time before any
event."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest

from services.audit.answers import answer_json, explain_from_ledger
from services.audit.api import create_api
from services.audit.forgery import NO_CHECK
from services.audit.ledger import Ledger
from shared.runtime.auth import AuthSettings, Guard, LocalIssuer, Role
from tests.unit.audit.conftest import get
from tests.unit.audit.evidence_story import at


@pytest.mark.parametrize(
    ("roles", "status"),
    [(None, 401), ((Role.GATEWAY,), 403), ((Role.VIEWER, Role.PROPOSER), 403), ((Role.AUDITOR,), 200)],
)
async def test_explain_needs_the_auditor_role(
    issuer: LocalIssuer, ledger_path: Path, roles: tuple[Role, ...] | None, status: int
) -> None:
    answer = await get(issuer, ledger_path, "/v1/explain?user=7&model=fable-5", roles)
    assert answer.status_code == status, answer.text
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")
    if status == 403:
        assert answer.json()["problems"][0]["message"] == "needs role auditor"


async def test_a_bad_token_is_refused(issuer: LocalIssuer, ledger_path: Path) -> None:
    stranger = LocalIssuer(key_id=issuer.key_id)  # same names, another key
    folder = ledger_path.parent / "auth"
    guard = Guard(AuthSettings(mode="on", jwks_file=issuer.write(folder), issuer=issuer.issuer), "audit")
    api = create_api("audit", lambda: Ledger(ledger_path, read_only=True), NO_CHECK, guard, lambda: True)
    headers = {"Authorization": f"Bearer {stranger.mint('mallory', [Role.AUDITOR])}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://audit") as client:
        assert (await client.get("/v1/explain?user=7&model=fable-5", headers=headers)).status_code == 401


async def test_health_and_metrics_need_no_credential(issuer: LocalIssuer, ledger_path: Path) -> None:
    assert (await get(issuer, ledger_path, "/healthz", None)).status_code == 200
    assert (await get(issuer, ledger_path, "/metrics", None)).status_code == 200


@pytest.mark.parametrize(
    "query", ["user=7&model=fable-5&at=2026-03-03T13:00:30Z", "user=9&model=fable-5&at=2026-03-03T13:01:40Z"]
)
async def test_the_answer_is_the_cli_json(issuer: LocalIssuer, ledger_path: Path, query: str) -> None:
    answer = await get(issuer, ledger_path, f"/v1/explain?{query}", (Role.AUDITOR,))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    params = dict(part.split("=") for part in query.split("&"))
    store = Ledger(ledger_path, read_only=True)
    expected = answer_json(
        explain_from_ledger(store, int(params["user"]), params["model"], datetime.fromisoformat(params["at"]))
    )
    store.close()
    assert answer.text == expected
    assert answer.json()["clusters"]["us-east"]["decision"] == "denied"


async def test_without_at_the_answer_is_for_now(issuer: LocalIssuer, ledger_path: Path) -> None:
    answer = await get(issuer, ledger_path, "/v1/explain?user=7&model=fable-5", (Role.AUDITOR,), now=at(30))
    assert answer.json()["at"] == at(30).isoformat()


@pytest.mark.parametrize(
    ("query", "status", "field", "words"),
    [
        ("user=4242&model=fable-5", 404, "user", "user: 4242 has no record"),
        ("user=7&model=no-such-model", 404, "model", "served by no cluster"),
        ("user=7&model=fable-5&at=1990-01-01T00:00:00Z", 422, "at", "before any recorded event"),
        ("user=7&model=fable-5&at=yesterday", 422, "at", "not an ISO 8601 time"),
        ("user=-1&model=fable-5", 422, "user", ""),
        ("model=fable-5", 422, "user", ""),
        ("user=7", 422, "model", ""),
    ],
)
async def test_bad_questions_get_a_clear_4xx(
    issuer: LocalIssuer, ledger_path: Path, query: str, status: int, field: str, words: str
) -> None:
    answer = await get(issuer, ledger_path, f"/v1/explain?{query}", (Role.AUDITOR,))
    assert answer.status_code == status, answer.text
    [problem] = answer.json()["problems"]
    assert problem["field"].endswith(field) and words in problem["message"]


async def test_no_ledger_yet_is_503(issuer: LocalIssuer, tmp_path: Path) -> None:
    answer = await get(issuer, tmp_path / "none" / "ledger.sqlite", "/v1/explain?user=7&model=fable-5", (Role.AUDITOR,))
    assert answer.status_code == 503
