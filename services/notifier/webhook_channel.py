"""The webhook channel: an organisation with an endpoint configured gets its members' notices POSTed there,
signed (webhooks.py); each endpoint has its own workers, rate and retries, so a slow one never holds up another."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import orjson

from services.notifier.notices import Contact
from services.notifier.pacing import Attempt, Throttle, settle_all
from services.notifier.retry import Outcome
from services.notifier.settings import ChannelLimits, WebhookEndpoint
from services.notifier.sink import Letter
from services.notifier.webhook_transport import webhook_transport
from services.notifier.webhooks import UrlPolicy, WebhookRefused, post, request_timeout


def payload(letter: Letter) -> bytes:
    """The body: a Standard Webhooks event (type, timestamp, data) carrying the rendered notice."""
    n = letter.notice
    return orjson.dumps(
        {
            "type": f"countermand.notice.{n.action}",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {**letter.as_record(), "html": letter.html},
        }
    )


class WebhookChannel:
    """POSTs signed notices to the endpoint of the recipient's organisation."""

    name = "webhook"

    def __init__(self, endpoints: Mapping[str, WebhookEndpoint], policy: UrlPolicy, limits: ChannelLimits) -> None:
        self._endpoints = dict(endpoints)
        self._policy = policy
        self._limits = limits
        self._throttles = {org: Throttle(limits.rate_per_s) for org in self._endpoints}
        self._transports: list[httpx.AsyncHTTPTransport] = []  # idle ones, each kept alive between batches
        self._tls: ssl.SSLContext | None = None
        self._timeout = request_timeout(limits.timeout_s)

    def serves(self, contact: Contact) -> bool:
        return contact.organisation is not None and contact.organisation in self._endpoints

    async def deliver(self, letters: list[Letter]) -> list[Outcome]:
        by_org: dict[str, list[int]] = {}
        for index, letter in enumerate(letters):
            by_org.setdefault(letter.contact.organisation or "", []).append(index)
        outcomes: list[Outcome] = [Outcome("permanent", "no webhook endpoint")] * len(letters)
        results = await asyncio.gather(
            *(self._to_endpoint(org, [letters[i] for i in idx]) for org, idx in by_org.items())
        )
        for indices, settled in zip(by_org.values(), results, strict=True):
            for index, outcome in zip(indices, settled, strict=True):
                outcomes[index] = outcome
        return outcomes

    async def _to_endpoint(self, org: str, letters: list[Letter]) -> list[Outcome]:
        endpoint = self._endpoints.get(org)
        if endpoint is None:
            return [Outcome("permanent", f"organisation {org!r} has no webhook endpoint")] * len(letters)
        try:
            self._policy.check(endpoint.url)
        except WebhookRefused as exc:
            return [Outcome("permanent", str(exc))] * len(letters)
        bodies = [payload(letter) for letter in letters]
        url, secrets, timeout = httpx.URL(endpoint.url), endpoint.secrets, self._timeout

        @asynccontextmanager
        async def worker() -> AsyncIterator[Attempt]:
            transport = self._take()

            async def attempt(index: int) -> Outcome:
                return await post(
                    transport, url, secrets, letters[index].notice.notification_id, bodies[index], timeout
                )

            try:
                yield attempt
            finally:
                self._transports.append(transport)  # at most as many as workers ever ran at once

        return await settle_all(len(letters), worker, self._limits, self._throttles[org])

    def _take(self) -> httpx.AsyncHTTPTransport:
        """A worker's own transport of one kept-alive connection: httpx's pool scans (and polls) every connection it
        holds on each request, so one pool shared by every worker cost more CPU per request the more it held."""
        if self._transports:
            return self._transports.pop()
        if self._tls is None:  # loading the CA bundle costs a third of a second: once per channel, not per client
            self._tls = httpx.create_ssl_context()
        return webhook_transport(self._tls)

    async def close(self) -> None:
        transports, self._transports = self._transports, []
        for transport in transports:
            await transport.aclose()
