"""The audit's HTTP API over a ledger holding two directives' stories, called with a token of given roles."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest

from services.audit.api import create_api
from services.audit.forgery import NO_CHECK
from services.audit.ledger import Ledger
from shared.runtime.auth import AuthSettings, Guard, LocalIssuer, Role
from tests.unit.audit.evidence_story import at
from tests.unit.audit.evidence_story import ledger_records as records


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer()


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    store = Ledger(tmp_path / "ledger.sqlite")
    store.append(records())
    store.close()
    return tmp_path / "ledger.sqlite"


async def get(
    issuer: LocalIssuer, ledger_path: Path, path: str, roles: tuple[Role, ...] | None, now: datetime = at(30)
) -> httpx.Response:
    """GET `path` from the audit's API over that ledger, its clock at `now`, with a token of `roles` (None: none)."""
    folder = ledger_path.parent / "auth"
    guard = Guard(AuthSettings(mode="on", jwks_file=issuer.write(folder), issuer=issuer.issuer), "audit")
    api = create_api(
        "audit", lambda: Ledger(ledger_path, read_only=True), NO_CHECK, guard, lambda: True, clock=lambda: now
    )
    headers = {"Authorization": f"Bearer {issuer.mint('someone', roles)}"} if roles is not None else {}
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit", headers=headers) as client:
        return await client.get(path)
