"""Two intake instances on one broker, amending the same directive at the same moment: each revision is published
once, in order, and a request that lost the race is refused with 409 with nothing published for it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.waiting import eventually
from services.intake.app import IntakeService
from shared.contracts.directives import DirectiveIssued
from tests.integration.intake.conftest import (
    directive_events,
    http_client,
    intake_settings,
    running_intake,
    serving_http,
)

pytestmark = pytest.mark.kafka
AMENDMENTS = 50


def directive(directive_id: str, title: str) -> dict[str, Any]:
    scope = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    return {"directive_id": directive_id, "title": title, "scope": scope}


class Twins:
    """Two intakes, each with its HTTP API served."""

    def __init__(self, services: list[IntakeService], urls: list[str]) -> None:
        self.services = services
        self.urls = urls


@pytest.fixture
async def twins(bootstrap: str, tmp_path: Path, unique: str) -> AsyncIterator[Twins]:
    async with (
        running_intake(intake_settings(bootstrap, tmp_path / "a", f"{unique}-a")) as a,
        running_intake(intake_settings(bootstrap, tmp_path / "b", f"{unique}-b")) as b,
        serving_http(a) as url_a,
        serving_http(b) as url_b,
    ):
        yield Twins([a, b], [url_a, url_b])


async def amend(url: str, directive_id: str, title: str) -> tuple[str, httpx.Response]:
    async with http_client(url) as client:
        client.timeout = httpx.Timeout(120)
        return title, await client.post("/directives", json=directive(directive_id, title))


async def test_concurrent_amendments_on_two_intakes_publish_each_revision_exactly_once(
    twins: Twins, bootstrap: str, unique: str
) -> None:
    _, first = await amend(twins.urls[0], unique, "Amendment 0")
    assert (first.status_code, first.json()["revision"]) == (202, 1), first.text

    answers = await asyncio.gather(
        *(amend(twins.urls[i % 2], unique, f"Amendment {i}") for i in range(1, AMENDMENTS + 1))
    )

    won = {title: response.json() for title, response in answers if response.status_code == 202}
    lost = [response for _, response in answers if response.status_code != 202]
    assert all(r.status_code == 409 for r in lost), [(r.status_code, r.text) for r in lost]
    assert lost, "no request lost a race: the two instances were never in conflict"
    revisions = sorted(answer["revision"] for answer in won.values())
    assert revisions == list(range(2, len(won) + 2))  # each 2xx took its own revision, no gaps

    events = [e for e in await directive_events(bootstrap, unique) if isinstance(e, DirectiveIssued)]
    assert [e.revision for e in events] == list(range(1, len(won) + 2))  # 1..n once each, in order, nothing else
    published = {e.title: e for e in events}
    assert set(published) == {"Amendment 0", *won}  # no loser's amendment was published
    for title, answer in won.items():  # every 2xx is exactly the event published for it
        assert (published[title].event_id, published[title].revision) == (answer["event_id"], answer["revision"])

    for response in lost:  # each refusal names the revision it lost to, one that was published
        body = response.json()
        assert "nothing was published for this request" in body["error"], body
        named = int(re.search(r"revision (\d+)", body["error"]).group(1))  # type: ignore[union-attr]
        assert 1 <= named <= len(won) + 1
        assert [p["field"] for p in body["problems"]] == ["revision"]

    async def both_at(revision: int) -> bool:
        shown = []
        for url in twins.urls:
            async with http_client(url) as client:
                shown.append((await client.get(f"/directives/{unique}")).json()["revision"])
        return shown == [revision, revision]

    await eventually(lambda: both_at(len(won) + 1), "both instances to show the last revision")
