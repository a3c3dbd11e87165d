"""The directive topic's max.message.bytes lowered under a running intake: a directive too large for it now is
refused with the broker's reason, logged, nothing recorded nor published; once the limit is back, the same request
is published exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devtools.waiting import eventually
from services.intake.app import IntakeService
from shared.contracts.catalogue import DIRECTIVES
from shared.contracts.directives import DirectiveIssued
from shared.runtime.kafka import admin
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics, wanted_configs
from tests.integration.intake.conftest import asgi_client, directive_events, intake_settings, running_intake

pytestmark = pytest.mark.kafka
SHRUNK = 256  # bytes: less than any directive event


def directive(directive_id: str) -> dict[str, Any]:
    scope = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    return {"directive_id": directive_id, "title": "Export control", "scope": scope}


@pytest.fixture
async def intake(bootstrap: str, tmp_path: Path, unique: str) -> AsyncIterator[IntakeService]:
    async with running_intake(intake_settings(bootstrap, tmp_path, unique)) as service:
        yield service


async def max_message_bytes(settings: KafkaSettings) -> str:
    async with admin(settings, "tests") as client:
        [described] = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, DIRECTIVES.name)])
    return {entry[0]: entry[1] for entry in described.resources[0][4]}["max.message.bytes"]


async def test_a_directive_larger_than_the_topics_max_after_a_config_change_is_refused_then_published_once(
    intake: IntakeService, bootstrap: str, unique: str
) -> None:
    settings = KafkaSettings(bootstrap=bootstrap)
    shrunk = {**wanted_configs(DIRECTIVES), "max.message.bytes": str(SHRUNK)}
    key = {"Idempotency-Key": f"shrunk-{unique}"}
    try:
        async with admin(settings, "tests") as client:
            await client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, DIRECTIVES.name, shrunk)])
        await eventually(lambda: _is(settings, str(SHRUNK)), "the lowered limit to apply")

        with structlog.testing.capture_logs() as logs:
            async with asgi_client(intake) as http:
                refused = await http.post("/directives", json=directive(unique), headers=key)
                unknown = await http.get(f"/directives/{unique}")

        assert refused.status_code == 503, refused.text
        assert "MessageSizeTooLarge" in refused.json()["error"], refused.json()  # the broker's reason, named
        assert any(e["event"] == "publish failed" and "MessageSizeTooLarge" in e["error"] for e in logs), logs
        assert unknown.status_code == 404  # nothing recorded
        assert await directive_events(bootstrap, unique) == []  # nothing published
    finally:
        await apply_topics(settings, (DIRECTIVES,))  # the catalogue's limit back
    await eventually(lambda: _is(settings, DIRECTIVES.configs()["max.message.bytes"]), "the limit to be restored")

    async with asgi_client(intake) as http:
        published = await http.post("/directives", json=directive(unique), headers=key)
        again = await http.post("/directives", json=directive(unique), headers=key)
    assert (published.status_code, published.json()["revision"]) == (202, 1), published.text
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (202, "true")
    [event] = await directive_events(bootstrap, unique)  # exactly once
    assert isinstance(event, DirectiveIssued) and event.event_id == published.json()["event_id"]


async def _is(settings: KafkaSettings, value: str) -> bool:
    return await max_message_bytes(settings) == value
