"""HTTP callers: who may call what, and every bad credential refused with its reason (401) or role (403)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from structlog.testing import capture_logs

from shared.runtime.auth import (
    ApiKeys,
    AuthSettings,
    Guard,
    LocalIssuer,
    Principal,
    Role,
    new_api_key,
)


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer()


@pytest.fixture(scope="module")
def client(issuer: LocalIssuer, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    folder = tmp_path_factory.mktemp("auth")
    presented, stored = new_api_key("gw-1", "gateway-eu", [Role.GATEWAY])
    _, retired = new_api_key("gw-0", "gateway-old", [Role.GATEWAY], not_after=datetime.now(UTC) - timedelta(1))
    (folder / "api-keys.json").write_text(ApiKeys([stored, retired]).to_json())
    settings = AuthSettings(
        mode="on", jwks_file=issuer.write(folder), issuer=issuer.issuer, api_keys_file=folder / "api-keys.json"
    )
    guard = Guard(settings, "test")
    api = FastAPI()
    guard.install(api)

    proposals: list[str] = []  # what a request that got through did

    @api.post("/directives")
    def propose(caller: Principal = Depends(guard.requires(Role.PROPOSER))) -> dict:
        proposals.append(caller.subject)
        return {"subject": caller.subject, "via": caller.via}

    @api.get("/v1/access")
    def access(caller: Principal = Depends(guard.requires(Role.GATEWAY))) -> dict:
        return {"subject": caller.subject, "via": caller.via}

    test_client = TestClient(api)
    test_client.api_key = presented  # type: ignore[attr-defined]
    test_client.proposals = proposals  # type: ignore[attr-defined]
    return test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refusal(response) -> str:
    return response.json()["problems"][0]["message"]


def test_a_proposer_token_is_accepted_and_names_its_subject(client: TestClient, issuer: LocalIssuer) -> None:
    answer = client.post("/directives", headers=bearer(issuer.mint("alice", [Role.PROPOSER])))
    assert answer.status_code == 200
    assert answer.json() == {"subject": "alice", "via": "token"}


def test_no_credential_is_a_401_with_a_challenge(client: TestClient) -> None:
    answer = client.post("/directives")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "missing credential" in refusal(answer)


def test_a_wrong_role_is_a_403_naming_the_role(client: TestClient, issuer: LocalIssuer) -> None:
    answer = client.post("/directives", headers=bearer(issuer.mint("bob", [Role.VIEWER])))
    assert answer.status_code == 403
    assert refusal(answer) == "needs role proposer"


def test_an_expired_token_is_refused(client: TestClient, issuer: LocalIssuer) -> None:
    answer = client.post("/directives", headers=bearer(issuer.mint("alice", [Role.PROPOSER], ttl_s=-120)))
    assert (answer.status_code, refusal(answer)) == (401, "token expired")


def test_a_token_not_valid_yet_is_refused(client: TestClient, issuer: LocalIssuer) -> None:
    token = issuer.mint("alice", [Role.PROPOSER], nbf=int(time.time()) + 600)
    answer = client.post("/directives", headers=bearer(token))
    assert (answer.status_code, refusal(answer)) == (401, "token not valid yet (nbf)")


def test_a_token_for_another_audience_is_refused(client: TestClient, issuer: LocalIssuer) -> None:
    answer = client.post("/directives", headers=bearer(issuer.mint("alice", [Role.PROPOSER], aud="billing")))
    assert answer.status_code == 401
    assert "another audience" in refusal(answer)


def test_a_token_from_another_issuer_is_refused(client: TestClient, issuer: LocalIssuer) -> None:
    answer = client.post("/directives", headers=bearer(issuer.mint("alice", [Role.PROPOSER], iss="https://evil")))
    assert (answer.status_code, refusal(answer)) == (401, "token from another issuer")


def _unsigned(claims: dict, header: dict) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def test_a_token_with_alg_none_is_refused(client: TestClient, issuer: LocalIssuer) -> None:
    claims = jwt.decode(issuer.mint("mallory", [Role.PROPOSER]), options={"verify_signature": False})
    answer = client.post("/directives", headers=bearer(_unsigned(claims, {"alg": "none", "kid": issuer.key_id})))
    assert (answer.status_code, refusal(answer)) == (401, "token algorithm 'none' is not allowed")


def test_a_token_signed_with_the_public_key_as_an_hmac_secret_is_refused(
    client: TestClient, issuer: LocalIssuer
) -> None:
    public = json.loads(issuer.jwks())["keys"][0]["x"]
    forged = jwt.encode(
        {
            "sub": "mallory",
            "roles": ["proposer"],
            "iss": issuer.issuer,
            "aud": issuer.audience,
            "exp": int(time.time()) + 60,
        },
        public,
        algorithm="HS256",
        headers={"kid": issuer.key_id},
    )
    answer = client.post("/directives", headers=bearer(forged))
    assert (answer.status_code, refusal(answer)) == (401, "token algorithm 'HS256' is not allowed")


def test_a_token_signed_by_another_key_under_a_known_key_id_is_refused(client: TestClient, issuer: LocalIssuer) -> None:
    impostor = LocalIssuer(issuer=issuer.issuer, key_id=issuer.key_id)
    answer = client.post("/directives", headers=bearer(impostor.mint("mallory", [Role.PROPOSER])))
    assert answer.status_code == 401
    assert "invalid token" in refusal(answer)


def test_a_token_with_an_unknown_key_id_is_refused(client: TestClient, issuer: LocalIssuer) -> None:
    stranger = LocalIssuer(issuer=issuer.issuer, key_id="someone-else")
    answer = client.post("/directives", headers=bearer(stranger.mint("mallory", [Role.PROPOSER])))
    assert (answer.status_code, refusal(answer)) == (401, "token signed by an unknown key 'someone-else'")


def _alg_none(issuer: LocalIssuer) -> str:
    claims = jwt.decode(issuer.mint("mallory", [Role.PROPOSER]), options={"verify_signature": False})
    return _unsigned(claims, {"alg": "none", "kid": issuer.key_id})


BAD_TOKENS = {
    "expired": (lambda i: i.mint("alice", [Role.PROPOSER], ttl_s=-120), "token expired"),
    "not yet valid": (
        lambda i: i.mint("alice", [Role.PROPOSER], nbf=int(time.time()) + 600),
        "token not valid yet (nbf)",
    ),
    "another audience": (
        lambda i: i.mint("alice", [Role.PROPOSER], aud="billing"),
        "token is for another audience (expected 'countermand')",
    ),
    "alg none": (_alg_none, "token algorithm 'none' is not allowed"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_bad_token_is_refused_logged_and_reaches_no_handler(
    client: TestClient, issuer: LocalIssuer, case: str
) -> None:
    mint, reason = BAD_TOKENS[case]
    before = list(client.proposals)  # type: ignore[attr-defined]
    with capture_logs() as logs:
        answer = client.post("/directives", headers=bearer(mint(issuer)))
    assert (answer.status_code, refusal(answer)) == (401, reason)
    logged = [e for e in logs if e["event"] == "request refused"]
    assert [(e["status"], e["reason"], e["path"]) for e in logged] == [(401, reason, "/directives")]
    # Nobody was authenticated; the log says who the token claims to be, as a claim.
    claimed = "mallory" if case == "alg none" else "alice"
    assert [(e["subject"], e["claimed_subject"]) for e in logged] == [(None, claimed)]
    assert client.proposals == before  # type: ignore[attr-defined]


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 5000, "eyJhbGciOiJFZERTQSJ9.e30"])
def test_a_malformed_or_truncated_token_is_refused(client: TestClient, token: str) -> None:
    assert client.post("/directives", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_gateway_api_key_is_accepted_and_a_wrong_or_retired_one_refused(client: TestClient) -> None:
    good = client.api_key  # type: ignore[attr-defined]
    assert client.get("/v1/access", headers={"X-API-Key": good}).json() == {"subject": "gateway-eu", "via": "api-key"}
    assert client.get("/v1/access", headers={"Authorization": f"ApiKey {good}"}).status_code == 200
    assert client.get("/v1/access", headers={"X-API-Key": good[:-1] + "x"}).status_code == 401
    with capture_logs() as logs:
        retired = client.get("/v1/access", headers={"X-API-Key": "gw-0.anything"})
    assert retired.status_code == 401
    assert [e["claimed_subject"] for e in logs if e["event"] == "request refused"] == ["api-key:gw-0"]


def test_a_gateway_key_cannot_propose(client: TestClient) -> None:
    answer = client.post("/directives", headers={"X-API-Key": client.api_key})  # type: ignore[attr-defined]
    assert answer.status_code == 403


def test_only_the_stored_hash_of_an_api_key_is_kept() -> None:
    presented, stored = new_api_key("gw-9", "gw", [Role.GATEWAY])
    secret = presented.split(".", 1)[1]
    assert secret not in ApiKeys([stored]).to_json()


def test_symmetric_algorithms_cannot_be_configured() -> None:
    with pytest.raises(ValidationError, match="HS256"):
        AuthSettings(mode="on", jwks_file=Path("k.json"), issuer="i", algorithms=["HS256"])


def test_auth_on_without_any_key_source_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="no COUNTERMAND_AUTH_JWKS_FILE"):
        AuthSettings(mode="on")


def test_auth_off_is_read_from_countermand_auth_and_lets_everyone_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERMAND_AUTH", "off")
    guard = Guard(AuthSettings(), "test")
    assert guard.authenticate(None, None).roles == frozenset(Role)
