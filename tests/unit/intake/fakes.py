"""Hand-written fakes for intake unit tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from shared.contracts.directives import DirectiveIssued, DirectiveLifted
from shared.runtime.auth import AuthSettings, Guard, LocalIssuer, Role


class FakeTopic:
    """Records what the desk publishes; can be told to fail."""

    def __init__(self) -> None:
        self.events: list[DirectiveIssued | DirectiveLifted] = []
        self.failing = False

    async def publish(self, event: DirectiveIssued | DirectiveLifted) -> None:
        await asyncio.sleep(0)  # let concurrent requests interleave here, as a real broker round trip would
        if self.failing:
            raise ConnectionError("broker down")
        self.events.append(event)


class Callers:
    """A local token issuer and the guard that trusts it: `headers("alice", Role.PROPOSER)` to call as alice."""

    def __init__(self, folder: Path) -> None:
        self.issuer = LocalIssuer()
        settings = AuthSettings(mode="on", jwks_file=self.issuer.write(folder), issuer=self.issuer.issuer)
        self.guard = Guard(settings, "intake")

    def headers(self, subject: str, *roles: Role, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.mint(subject, roles, **claims)}"}
