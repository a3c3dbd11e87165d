"""The webhook channel: an organisation with an endpoint configured gets its members' notices POSTed there,
signed (webhooks.py); each endpoint has its own workers, rate and retries, so a slow one never holds up another."""

from __future__ import annotations

import asyncio
import json
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
        self._client: httpx.AsyncClient | None = None

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
        client = self._http()

        @asynccontextmanager
        async def worker() -> AsyncIterator[Attempt]:
            async def attempt(index: int) -> Outcome:
                return await post(
                    client, endpoint.url, endpoint.secrets, letters[index].notice.notification_id, bodies[index]
                )

            yield attempt

        return await settle_all(len(letters), worker, self._limits, self._throttles[org])

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            most = self._limits.concurrency * max(1, len(self._endpoints))
            # Every connection kept alive between requests and batches (httpx keeps 20 by default).
            limits = httpx.Limits(max_connections=most, max_keepalive_connections=most)
            self._client = httpx.AsyncClient(timeout=self._limits.timeout_s, limits=limits)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
