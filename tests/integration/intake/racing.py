"""Two intake instances on one broker or cluster, amending the same directive at the same moment (shared by the
intake integration tests and the three-broker suite)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import httpx

from devtools.ports import free_port
from devtools.waiting import eventually
from services.intake.settings import IntakeSettings
from shared.contracts.catalogue import DIRECTIVES
from shared.contracts.directives import DirectiveIssued
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings
from tests.integration.intake.conftest import auth_settings, http_client, running_intake, serving_http


def directive(directive_id: str, title: str) -> dict[str, Any]:
    scope = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    return {"directive_id": directive_id, "title": title, "scope": scope}


def settings_of(kafka: KafkaSettings, state_dir: Path, instance: str) -> IntakeSettings:
    return IntakeSettings(
        kafka=kafka, state_dir=state_dir, instance=instance, http_port=free_port(), auth=auth_settings()
    )


async def amend(url: str, directive_id: str, title: str) -> tuple[str, httpx.Response]:
    async with http_client(url) as client:
        client.timeout = httpx.Timeout(120)
        return title, await client.post("/directives", json=directive(directive_id, title))


async def issued(kafka: KafkaSettings, directive_id: str) -> list[DirectiveIssued]:
    """The DirectiveIssued events on the topic for this id (committed records only), in order."""
    found = []
    async for record in records_to_end(kafka, DIRECTIVES, "tests"):
        if record.key == directive_id.encode():
            event = DIRECTIVES.adapter.validate_json(record.value)
            if isinstance(event, DirectiveIssued):
                found.append(event)
    return found


async def race_amendments(
    kafka: KafkaSettings, state_dir: Path, directive_id: str, amendments: int, settle_s: float = 60
) -> None:
    """Issue revision 1 on one intake, then send `amendments` concurrent amendments split across two intakes, and
    check: every answer 202 or 409, revisions 1..n on the topic exactly once in order, each 202 is the event
    published for it, no loser's amendment published, each 409 names a published revision."""
    async with contextlib.AsyncExitStack() as stack:
        urls = []
        for name in ("a", "b"):
            service = await stack.enter_async_context(
                running_intake(settings_of(kafka, state_dir / name, f"{directive_id}-{name}"))
            )
            urls.append(await stack.enter_async_context(serving_http(service)))

        _, first = await amend(urls[0], directive_id, "Amendment 0")
        assert (first.status_code, first.json()["revision"]) == (202, 1), first.text

        answers = await asyncio.gather(
            *(amend(urls[i % 2], directive_id, f"Amendment {i}") for i in range(1, amendments + 1))
        )
        won = {title: response.json() for title, response in answers if response.status_code == 202}
        lost = [response for _, response in answers if response.status_code != 202]
        assert all(r.status_code == 409 for r in lost), [(r.status_code, r.text) for r in lost]
        assert lost, "no request lost a race: the two instances were never in conflict"
        last = len(won) + 1
        assert sorted(answer["revision"] for answer in won.values()) == list(range(2, last + 1))

        events = await issued(kafka, directive_id)
        assert [e.revision for e in events] == list(range(1, last + 1))  # 1..n once each, in order, nothing else
        published = {e.title: e for e in events}
        assert set(published) == {"Amendment 0", *won}  # no loser's amendment was published
        for title, answer in won.items():  # every 2xx is exactly the event published for it
            assert (published[title].event_id, published[title].revision) == (answer["event_id"], answer["revision"])
        for response in lost:  # each refusal names the revision it lost to, one that was published
            body = response.json()
            assert "nothing was published for this request" in body["error"], body
            named = int(re.search(r"revision (\d+)", body["error"]).group(1))  # type: ignore[union-attr]
            assert 1 <= named <= last
            assert [p["field"] for p in body["problems"]] == ["revision"]

        async def both_at_last() -> bool:
            shown = []
            for url in urls:
                async with http_client(url) as client:
                    shown.append((await client.get(f"/directives/{directive_id}")).json()["revision"])
            return shown == [last, last]

        await eventually(both_at_last, "both instances to show the last revision", timeout=settle_s)
