"""Who may ask an agent: gateways with an API key (on the hot path too); every other caller refused and logged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.agent.http import AccessFront, access_api, server_config
from shared.runtime.auth import ApiKeys, AuthSettings, Guard, LocalIssuer, Role, new_api_key
from shared.runtime.uvicorn_fence import embedded_server
from tests.unit.agent.builders import held_checker

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CHECK = "/v1/access?user=1042&model=fable-5"


class Keys:
    """A gateway key, a retired one, a viewer's key and a token issuer, and the guard trusting them."""

    def __init__(self, folder: Path) -> None:
        self.gateway, gateway = new_api_key("gw-1", "gateway-eu", [Role.GATEWAY])
        self.retired, retired = new_api_key("gw-0", "gateway-old", [Role.GATEWAY], datetime.now(UTC) - timedelta(1))
        self.viewer, viewer = new_api_key("ops-1", "ops", [Role.VIEWER])
        (folder / "keys.json").write_text(ApiKeys([gateway, retired, viewer]).to_json())
        self.issuer = LocalIssuer()
        settings = AuthSettings(
            mode="on",
            jwks_file=self.issuer.write(folder),
            issuer=self.issuer.issuer,
            api_keys_file=folder / "keys.json",
        )
        self.guard = Guard(settings, "agent")


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


@pytest.fixture
def front(keys: Keys) -> AccessFront:
    checker, state = held_checker(True)
    return access_api(checker, state.describe, lambda: NOW, None, keys.guard)


async def _get(front: AccessFront, path: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front), base_url="http://agent") as client:
        return await client.get(path, headers=headers)


async def test_a_gateway_key_gets_its_answer(front: AccessFront, keys: Keys) -> None:
    answer = await _get(front, CHECK, {"X-API-Key": keys.gateway})
    assert (answer.status_code, answer.json()["decision"]) == (200, "deny")


@pytest.mark.parametrize(
    ("who", "status", "says"),
    [
        ("none", 401, "missing credential"),
        ("wrong", 401, "unknown or wrong API key"),
        ("retired", 401, "API key 'gw-0' is retired"),
        ("viewer-key", 403, "needs role gateway"),
        ("viewer-token", 403, "needs role gateway"),
    ],
)
async def test_anyone_but_a_gateway_is_refused(
    front: AccessFront, keys: Keys, who: str, status: int, says: str
) -> None:
    headers = {
        "none": {},
        "wrong": {"X-API-Key": keys.gateway[:-2] + "xx"},
        "retired": {"X-API-Key": keys.retired},
        "viewer-key": {"X-API-Key": keys.viewer},
        "viewer-token": {"Authorization": f"Bearer {keys.issuer.mint('vic', [Role.VIEWER])}"},
    }[who]
    for path in (CHECK, "/v1/access:batch"):
        if path == CHECK:
            answer = await _get(front, path, headers)
        else:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front), base_url="http://agent") as c:
                answer = await c.post(path, json={"checks": [{"user": 1042, "model": "fable-5"}]}, headers=headers)
        assert answer.status_code == status, (path, answer.text)
        assert says in answer.json()["problems"][0]["message"]


async def test_health_is_open_and_held_state_is_for_viewers_too(front: AccessFront, keys: Keys) -> None:
    assert (await _get(front, "/healthz", {})).status_code == 200
    assert (await _get(front, "/readyz", {})).status_code == 200
    assert (await _get(front, "/v1/state", {})).status_code == 401
    assert (await _get(front, "/v1/state", {"X-API-Key": keys.viewer})).status_code == 200


@pytest.fixture
async def port(front: AccessFront) -> AsyncIterator[int]:
    server = embedded_server(server_config(front, "127.0.0.1", 0))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def test_on_the_wire_the_hot_path_answers_a_gateway_and_refuses_the_others(port: int, keys: Keys) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        allowed = await client.get(CHECK, headers={"X-API-Key": keys.gateway})
        missing = await client.get(CHECK)
        wrong = await client.get(CHECK, headers={"X-API-Key": "gw-1.not-the-secret"})
    assert (allowed.status_code, allowed.json()["decision"]) == (200, "deny")
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
