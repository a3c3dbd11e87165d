"""The webhook channel: an organisation with an endpoint configured gets its members' notices POSTed there,
signed (webhooks.py); each endpoint has its own workers, rate and retries, so a slow one never holds up another."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx

from services.notifier.notices import Contact
from services.notifier.pacing import Attempt, Throttle, settle_all
from services.notifier.retry import Outcome
from services.notifier.settings import ChannelLimits, WebhookEndpoint
from services.notifier.sink import Letter
from services.notifier.webhooks import UrlPolicy, WebhookRefused, post


def payload(letter: Letter) -> bytes:
    """The body: a Standard Webhooks event (type, timestamp, data) carrying the rendered notice."""
    n = letter.notice
    return json.dumps(
        {
            "type": f"countermand.notice.{n.action}",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {**letter.as_record(), "html": letter.html},
        },
        ensure_ascii=False,
    ).encode()


class WebhookChannel:
    """POSTs signed notices to the endpoint of the recipient's organisation."""

    name = "webhook"

    def __init__(self, endpoints: Mapping[str, WebhookEndpoint], policy: UrlPolicy, limits: ChannelLimits) -> None:
        self._endpoints = dict(endpoints)
        self._policy = policy
        self._limits = limits
        self._throttles = {org: Throttle(limits.rate_per_s) for org in self._endpoints}
        self._clients: list[httpx.AsyncClient] = []  # idle ones, each kept alive between batches
        self._tls: ssl.SSLContext | None = None

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

        @asynccontextmanager
        async def worker() -> AsyncIterator[Attempt]:
            client = self._take()

            async def attempt(index: int) -> Outcome:
                return await post(
                    client, endpoint.url, endpoint.secrets, letters[index].notice.notification_id, bodies[index]
                )

            try:
                yield attempt
            finally:
                self._give_back(client)

        return await settle_all(len(letters), worker, self._limits, self._throttles[org])

    def _take(self) -> httpx.AsyncClient:
        """A worker's own client of one kept-alive connection: httpx's pool scans (and polls) every connection it
        holds on each request, so one pool shared by every worker cost more CPU per request the more it held."""
        if self._clients:
            return self._clients.pop()
        if self._tls is None:  # loading the CA bundle costs a third of a second: once per channel, not per client
            self._tls = httpx.create_ssl_context()
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return httpx.AsyncClient(timeout=self._limits.timeout_s, limits=limits, verify=self._tls)

    def _give_back(self, client: httpx.AsyncClient) -> None:
        self._clients.append(client)  # at most as many as workers ever ran at once

    async def close(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()
