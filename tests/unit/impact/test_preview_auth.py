"""Dry runs reveal user ids and counts: only proposers, approvers and viewers get them; health stays open."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services.impact.api import create_api
from shared.runtime.auth import AuthSettings, Guard, LocalIssuer, Role
from tests.unit.impact.test_preview_api import FOREIGN, FakeState, body, people


@pytest.fixture
def issuer() -> LocalIssuer:
    return LocalIssuer()


async def call(issuer: LocalIssuer, folder: Path, path: str, roles: tuple[Role, ...] | None) -> httpx.Response:
    guard = Guard(AuthSettings(mode="on", jwks_file=issuer.write(folder), issuer=issuer.issuer), "impact")
    headers = {"Authorization": f"Bearer {issuer.mint('someone', roles)}"} if roles is not None else {}
    transport = httpx.ASGITransport(app=create_api(FakeState(people()), guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://impact", headers=headers) as client:
        if path.endswith("preview"):
            return await client.post(path, json=body(FOREIGN))
        return await client.get(path)


@pytest.mark.parametrize(
    ("roles", "status"),
    [(None, 401), ((Role.GATEWAY,), 403), ((Role.VIEWER,), 200), ((Role.PROPOSER,), 200), ((Role.APPROVER,), 200)],
)
async def test_a_dry_run_needs_a_proposer_approver_or_viewer(
    issuer: LocalIssuer, tmp_path: Path, roles: tuple[Role, ...] | None, status: int
) -> None:
    answer = await call(issuer, tmp_path, "/directives/preview", roles)
    assert answer.status_code == status, answer.text
    if status == 403:
        assert answer.json()["problems"][0]["message"] == "needs role approver or proposer or viewer"


async def test_health_needs_no_credential(issuer: LocalIssuer, tmp_path: Path) -> None:
    assert (await call(issuer, tmp_path, "/healthz", None)).status_code == 200
    assert (await call(issuer, tmp_path, "/metrics", None)).status_code == 200  # counts per model, no user id
