"""Webhook notices signed as the Standard Webhooks specification says, and the rules for where they may go.

Headers `webhook-id` (the notice's idempotency key: receivers deduplicate on it), `webhook-timestamp` (Unix
seconds) and `webhook-signature` (space-separated `v1,<base64 HMAC-SHA256>` over `id.timestamp.body`, one per
active secret, so a secret can be rotated without a gap). Secrets are `whsec_` + base64 of the key bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from services.notifier.retry import DELIVERED, Outcome

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300


class WebhookRefused(ValueError):
    """A webhook that must not be sent (bad URL) or received (bad signature, replay, too old)."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookRefused(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError as exc:
        raise WebhookRefused("a webhook secret is base64 after its prefix") from exc


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secrets_: Sequence[str], webhook_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every active secret of the endpoint."""
    if not secrets_:
        raise WebhookRefused("an endpoint needs at least one secret")
    timestamp = int(now if now is not None else time.time())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, webhook_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
    }


def verify(secrets_: Iterable[str], headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """What a receiver does: the webhook id when a signature of one of `secrets_` matches and it is fresh."""
    webhook_id, stamp, signatures = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not webhook_id or not stamp or not signatures:
        raise WebhookRefused("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookRefused("webhook-timestamp is not Unix seconds") from exc
    if abs((now if now is not None else time.time()) - timestamp) > TOLERANCE_S:
        raise WebhookRefused("webhook-timestamp outside the tolerance (a replay or a skewed clock)")
    offered = signatures.split()
    for secret in secrets_:
        expected = signature(secret, webhook_id, timestamp, body)
        if any(hmac.compare_digest(expected, s) for s in offered):
            return webhook_id
    raise WebhookRefused("no signature matches (tampered body or wrong secret)")


@dataclass(frozen=True)
class UrlPolicy:
    """Where webhooks may go: https only (plain http on loopback), and inside the allow-list of host suffixes."""

    allowed_hosts: tuple[str, ...] = ()

    def check(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise WebhookRefused(f"webhook URL {url!r} has no host")
        loopback = host == "localhost" or _is_loopback(host)
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise WebhookRefused(f"webhook URL {url!r} must be https (plain http only on loopback)")
        if not any(host == a or host.endswith("." + a) for a in self.allowed_hosts):
            raise WebhookRefused(f"webhook host {host!r} is not in the allow-list")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def request_timeout(timeout_s: float) -> dict[str, float | None]:
    """The timeout extension of a request (what httpx.AsyncClient would attach): connect, read, write, pool."""
    return httpx.Timeout(timeout_s).as_dict()


async def post(
    transport: httpx.AsyncBaseTransport,
    url: httpx.URL,
    secrets_: Sequence[str],
    webhook_id: str,
    body: bytes,
    timeout: Mapping[str, float | None],
) -> Outcome:
    """POST one signed webhook straight to the transport (no client: no cookies, auth, redirects or hooks to run);
    2xx delivered, 429/5xx/timeouts/refused connections transient, other 4xx permanent (410 Gone included: the
    endpoint is gone). Signed at each attempt: a retry carries a fresh webhook-timestamp, inside the tolerance."""
    headers = signed_headers(secrets_, webhook_id, body)
    request = httpx.Request("POST", url, content=body, headers=headers, extensions={"timeout": timeout})
    try:
        answer = await transport.handle_async_request(request)
        try:
            await answer.aread()
        finally:
            await answer.aclose()
    except httpx.TimeoutException:
        return Outcome("transient", "timed out")
    except httpx.TransportError as exc:
        return Outcome("transient", f"connection failed: {type(exc).__name__}")
    if answer.is_success:
        return DELIVERED
    reason = f"HTTP {answer.status_code}"
    if answer.status_code == 429 or answer.status_code >= 500:
        return Outcome("transient", reason)
    return Outcome("permanent", reason)
