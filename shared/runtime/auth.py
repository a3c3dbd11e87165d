"""Who is calling: OIDC-style bearer tokens (JWTs checked against a JWK set) and hashed API keys, mapped to roles.

Every HTTP endpoint states the roles it needs (`Guard.requires`); 401 for a missing or invalid credential, 403
for a wrong role, each logged with the subject. `COUNTERMAND_AUTH=off` exists for local play and says so loudly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = structlog.get_logger("countermand.auth")

_ASYMMETRIC = frozenset({"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
API_KEY_HEADER = "x-api-key"


class Role(StrEnum):
    """What a caller may do. Proposer and approver are distinct people (four eyes); emergency may act alone."""

    PROPOSER = "proposer"
    APPROVER = "approver"
    AUDITOR = "auditor"
    VIEWER = "viewer"
    GATEWAY = "gateway"
    EMERGENCY = "emergency"


class AuthSettings(BaseSettings):
    """Authentication of HTTP callers (env prefix COUNTERMAND_AUTH_; COUNTERMAND_AUTH=off turns it off)."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_AUTH_", extra="forbid", populate_by_name=True)

    mode: Literal["on", "off"] = Field(
        "on",
        validation_alias=AliasChoices("COUNTERMAND_AUTH"),  # not "mode": an env var MODE would turn it off
        description="on: every request needs a credential; off: local play only, announced by a warning at start.",
    )
    jwks_file: Path | None = Field(None, description="JWK set (JSON) of the identity provider's token signing keys.")
    jwks_url: str | None = Field(None, description="URL of the identity provider's JWK set (instead of a file).")
    issuer: str = Field("", description="Required `iss` of every token.")
    audience: str = Field("countermand", min_length=1, description="Required `aud` of every token.")
    algorithms: list[str] = Field(
        ["EdDSA", "ES256", "RS256"], min_length=1, description="Token signature algorithms accepted (asymmetric only)."
    )
    roles_claim: str = Field("roles", min_length=1, description="Claim holding the caller's roles (a list).")
    leeway_s: float = Field(30.0, ge=0, le=300, description="Clock skew tolerated on exp and nbf.")
    api_keys_file: Path | None = Field(None, description="Hashed API keys (JSON) for gateways and other machines.")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = [a for a in value if a not in _ASYMMETRIC]
        if refused:
            raise ValueError(
                f"algorithms {refused} are not allowed: only asymmetric signatures ({', '.join(sorted(_ASYMMETRIC))})"
            )
        return value

    @model_validator(mode="after")
    def _complete(self) -> AuthSettings:
        if self.mode == "on" and self.jwks_file is None and self.jwks_url is None and self.api_keys_file is None:
            raise ValueError(
                "authentication is on but no COUNTERMAND_AUTH_JWKS_FILE, COUNTERMAND_AUTH_JWKS_URL or "
                "COUNTERMAND_AUTH_API_KEYS_FILE is set (COUNTERMAND_AUTH=off for local play only)"
            )
        if self.mode == "on" and (self.jwks_file or self.jwks_url) and not self.issuer:
            raise ValueError("token verification needs COUNTERMAND_AUTH_ISSUER")
        return self


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    subject: str
    roles: frozenset[Role]
    via: Literal["token", "api-key", "auth-off"]


class AuthError(Exception):
    """A refused request: 401 (who are you?) or 403 (not allowed); `reason` is safe to show the caller."""

    def __init__(self, status: Literal[401, 403], reason: str, subject: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.subject = subject
        self.claimed: str | None = None  # who a refused credential says it is, unverified: for the log only


def _claimed_subject(token: str) -> str | None:
    """The `sub` a token claims, read without checking anything (it was refused): for the refusal's log line."""
    try:
        sub = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.InvalidTokenError:
        return None
    return sub[:200] if isinstance(sub, str) else None


def _roles(values: Any) -> frozenset[Role]:
    if isinstance(values, str):
        values = values.split()
    if not isinstance(values, list):
        return frozenset()
    return frozenset(Role(v) for v in values if isinstance(v, str) and v in Role._value2member_map_)


class TokenVerifier:
    """Checks a JWT's signature against the JWK set, then issuer, audience, expiry and not-before."""

    def __init__(self, keys: jwt.PyJWKSet | jwt.PyJWKClient, settings: AuthSettings) -> None:
        self._keys = keys
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> TokenVerifier | None:
        if settings.jwks_file is not None:
            try:
                keys = jwt.PyJWKSet.from_json(settings.jwks_file.read_text(encoding="utf-8"))
            except (OSError, jwt.PyJWKSetError, ValueError) as exc:
                raise ValueError(f"COUNTERMAND_AUTH_JWKS_FILE {settings.jwks_file}: {exc}") from exc
            return cls(keys, settings)
        if settings.jwks_url is not None:
            return cls(jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300), settings)
        return None

    def _key(self, kid: str) -> Any:
        if isinstance(self._keys, jwt.PyJWKClient):
            return self._keys.get_signing_key(kid).key
        return self._keys[kid].key

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"malformed token: {exc}") from exc
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in self._settings.algorithms:
            raise AuthError(401, f"token algorithm {algorithm!r} is not allowed")
        if not isinstance(kid, str):
            raise AuthError(401, "token has no key id (kid)")
        try:
            key = self._key(kid)
        except (KeyError, jwt.PyJWKClientError) as exc:
            raise AuthError(401, f"token signed by an unknown key {kid!r}") from exc
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError(401, "token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError(401, "token not valid yet (nbf)") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(401, f"token is for another audience (expected {self._settings.audience!r})") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(401, "token from another issuer") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"invalid token: {exc}") from exc
        except (jwt.InvalidKeyError, TypeError) as exc:  # PyJWT's word for a key of another type than the alg's
            raise AuthError(401, f"token algorithm {algorithm!r} does not match key {kid!r}") from exc
        return Principal(str(claims["sub"]), _roles(claims.get(self._settings.roles_claim)), "token")


@dataclass(frozen=True)
class ApiKey:
    """A stored API key: only the SHA-256 of its secret is kept; `not_after` retires it (rotation)."""

    key_id: str
    subject: str
    sha256: str
    roles: frozenset[Role]
    not_after: datetime | None = None

    def entry(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "subject": self.subject,
            "sha256": self.sha256,
            "roles": sorted(self.roles),
            "not_after": self.not_after.isoformat() if self.not_after else None,
        }


def new_api_key(
    key_id: str, subject: str, roles: Iterable[Role], not_after: datetime | None = None
) -> tuple[str, ApiKey]:
    """A fresh key: the string the caller presents (`id.secret`, shown once) and what is stored."""
    secret = secrets.token_urlsafe(32)
    stored = ApiKey(key_id, subject, hashlib.sha256(secret.encode()).hexdigest(), frozenset(roles), not_after)
    return f"{key_id}.{secret}", stored


class ApiKeys:
    """The stored API keys, by id."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = {k.key_id: k for k in keys}

    @classmethod
    def from_file(cls, path: Path) -> ApiKeys:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["keys"]
            return cls(
                ApiKey(
                    e["id"],
                    e["subject"],
                    e["sha256"],
                    _roles(e["roles"]),
                    datetime.fromisoformat(e["not_after"]) if e.get("not_after") else None,
                )
                for e in entries
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"COUNTERMAND_AUTH_API_KEYS_FILE {path}: not an API key file: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps({"keys": [k.entry() for k in self._keys.values()]}, indent=2)

    def stored(self) -> list[ApiKey]:
        """Every stored key."""
        return list(self._keys.values())

    def verify(self, presented: str, now: datetime | None = None) -> Principal:
        key_id, _, secret = presented.partition(".")
        stored = self._keys.get(key_id)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if stored is None or not secret or not hmac.compare_digest(digest, stored.sha256):
            raise AuthError(401, "unknown or wrong API key")
        if stored.not_after is not None and (now or datetime.now(UTC)) >= stored.not_after:
            raise AuthError(401, f"API key {key_id!r} is retired", stored.subject)
        return Principal(stored.subject, stored.roles, "api-key")


class FastKeys:
    """The API keys holding one role as a precomputed dict, for a hot path: per request one SHA-256 and one dict
    lookup, no token work. A request it does not allow is left to the Guard, which refuses it and logs why."""

    def __init__(self, guard: Guard, role: Role) -> None:
        self.open = guard.settings.mode == "off"
        stored = guard.api_keys.stored() if guard.api_keys is not None else []
        self._keys = {
            k.key_id.encode(): (bytes.fromhex(k.sha256), k.not_after.timestamp() if k.not_after else float("inf"))
            for k in stored
            if role in k.roles
        }

    def allows(self, presented: bytes | None) -> bool:
        """Whether `presented` (the X-API-Key header's value) is a live key holding the role."""
        if self.open:
            return True
        if not presented:
            return False
        key_id, _, secret = presented.partition(b".")
        entry = self._keys.get(key_id)
        if entry is None or not secret:
            return False
        return hmac.compare_digest(hashlib.sha256(secret).digest(), entry[0]) and time.time() < entry[1]


class Guard:
    """Authenticates requests and checks roles for one service's HTTP API."""

    def __init__(self, settings: AuthSettings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.tokens = TokenVerifier.from_settings(settings) if settings.mode == "on" else None
        self.api_keys = (
            ApiKeys.from_file(settings.api_keys_file) if settings.mode == "on" and settings.api_keys_file else None
        )
        if settings.mode == "off":
            log.warning(
                "authentication is OFF: every caller may do everything (COUNTERMAND_AUTH=off is for local play only)",
                service=service,
            )

    def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        if self.settings.mode == "off":
            return Principal("anonymous", frozenset(Role), "auth-off")
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and credential and self.tokens is not None:
            try:
                return self.tokens.verify(credential.strip())
            except AuthError as exc:
                exc.claimed = _claimed_subject(credential.strip())
                raise
        if scheme.lower() == "apikey" and credential:
            api_key = credential.strip()
        if api_key and self.api_keys is not None:
            try:
                return self.api_keys.verify(api_key)
            except AuthError as exc:
                exc.claimed = f"api-key:{api_key.partition('.')[0][:64]}"
                raise
        raise AuthError(
            401,
            "missing credential: send Authorization: Bearer <token>"
            + (" or an API key" if self.api_keys is not None else ""),
        )

    def requires(self, *roles: Role) -> Callable[[Request], Principal]:
        """A FastAPI dependency: the caller, authenticated and holding at least one of `roles`."""
        wanted = frozenset(roles)

        def dependency(request: Request) -> Principal:
            principal = self.authenticate(request.headers.get("authorization"), request.headers.get(API_KEY_HEADER))
            if wanted and not principal.roles & wanted:
                raise AuthError(403, f"needs role {' or '.join(sorted(wanted))}", principal.subject)
            request.state.principal = principal
            return principal

        return dependency

    def install(self, api: FastAPI) -> None:
        """Render AuthErrors as the project's refusals and log each with the subject."""
        service = self.service

        async def refused(request: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, AuthError)
            log.warning(
                "request refused",
                service=service,
                status=exc.status,
                reason=exc.reason,
                subject=exc.subject,
                claimed_subject=exc.claimed,  # unverified: who the refused credential says it is
                method=request.method,
                path=request.url.path,
            )
            headers = (
                {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc.reason}"'}
                if exc.status == 401
                else {}
            )
            error = "unauthenticated" if exc.status == 401 else "forbidden"
            return JSONResponse(
                {"error": error, "problems": [{"field": "authorization", "message": exc.reason}]},
                status_code=exc.status,
                headers=headers,
            )

        api.add_exception_handler(AuthError, refused)


class LocalIssuer:
    """A token issuer for `make run` and the tests (production uses the organisation's identity provider)."""

    def __init__(
        self,
        issuer: str = "https://countermand.local",
        audience: str = "countermand",
        key_id: str = "local-1",
        key: Ed25519PrivateKey | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.key_id = key_id
        self._key = key or Ed25519PrivateKey.generate()

    def save(self, folder: Path) -> Path:
        """Keep the issuer in `folder` (its private key readable by the owner only) so that later commands
        (`countermand auth token`) mint tokens the services accept; returns the JWK set's path."""
        folder.mkdir(parents=True, exist_ok=True)
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_path = folder / "issuer-key.pem"
        key_path.touch(mode=0o600)
        key_path.write_bytes(pem)
        about = {"issuer": self.issuer, "audience": self.audience, "key_id": self.key_id}
        (folder / "issuer.json").write_text(json.dumps(about, indent=2), encoding="utf-8")
        return self.write(folder)

    @classmethod
    def load(cls, folder: Path) -> LocalIssuer:
        """The issuer saved in `folder`."""
        about = json.loads((folder / "issuer.json").read_text(encoding="utf-8"))
        key = serialization.load_pem_private_key((folder / "issuer-key.pem").read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{folder / 'issuer-key.pem'} is not an Ed25519 key")
        return cls(about["issuer"], about["audience"], about["key_id"], key)

    def jwks(self) -> str:
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self._key.public_key()))
        return json.dumps({"keys": [{**jwk, "kid": self.key_id, "alg": "EdDSA", "use": "sig"}]})

    def write(self, folder: Path) -> Path:
        """Write the JWK set into `folder`; returns its path (COUNTERMAND_AUTH_JWKS_FILE)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "jwks.json"
        path.write_text(self.jwks(), encoding="utf-8")
        return path

    def mint(self, subject: str, roles: Iterable[Role | str], ttl_s: float = 3600, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + int(ttl_s),
            "roles": [str(r) for r in roles],
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm="EdDSA", headers={"kid": self.key_id})


def create_local_identities(folder: Path) -> tuple[LocalIssuer, str]:
    """A new local issuer and one gateway API key saved in `folder` (development and tests only): the issuer,
    and the key as a gateway presents it (shown once; only its hash is stored)."""
    issuer = LocalIssuer()
    issuer.save(folder)
    presented, stored = new_api_key("gateway-1", "gateway", [Role.GATEWAY])
    (folder / "api-keys.json").write_text(ApiKeys([stored]).to_json(), encoding="utf-8")
    return issuer, presented


def local_environment(folder: Path, issuer: LocalIssuer) -> dict[str, str]:
    """The COUNTERMAND_AUTH_* settings that make a service trust the issuer and API keys saved in `folder`."""
    return {
        "COUNTERMAND_AUTH_JWKS_FILE": str((folder / "jwks.json").resolve()),
        "COUNTERMAND_AUTH_ISSUER": issuer.issuer,
        "COUNTERMAND_AUTH_AUDIENCE": issuer.audience,
        "COUNTERMAND_AUTH_API_KEYS_FILE": str((folder / "api-keys.json").resolve()),
    }
