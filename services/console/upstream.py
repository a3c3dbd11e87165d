"""Calls to the other services' HTTP APIs on the user's behalf (their token), so each service checks the roles
and rules itself (four eyes stays intake's to enforce)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Reply:
    """A service's answer, or why there was none (status 0: not reached); `raw` keeps a file's bytes."""

    status: int
    body: Any
    raw: bytes = b""
    content_type: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        """What went wrong, for the page."""
        if isinstance(self.body, dict):
            return str(self.body.get("error") or self.body.get("detail") or self.body)
        return str(self.body)

    @property
    def problems(self) -> list[dict[str, str]]:
        """The refusal's problems, each naming a field (the project's Failure body)."""
        found = self.body.get("problems", []) if isinstance(self.body, dict) else []
        return [p for p in found if isinstance(p, dict)]


@dataclass
class Upstream:
    """One other service, reached at `base_url`."""

    name: str
    base_url: str
    client: httpx.AsyncClient

    async def call(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Reply:
        try:
            reply = await self.client.request(method, f"{self.base_url.rstrip('/')}{path}", headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            return Reply(0, f"{self.name} could not be reached ({type(exc).__name__}): try again shortly")
        try:
            body: Any = reply.json()
        except ValueError:
            body = reply.text[:500]
        return Reply(reply.status_code, body, reply.content, reply.headers.get("content-type", ""))
