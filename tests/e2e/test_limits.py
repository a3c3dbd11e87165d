"""A directive at every limit at once, end to end: issued through intake, assessed, enforced on every cluster,
still readable after every service restarted, then lifted everywhere; one past each limit refused at intake.

The at-limit directive covers exactly the foreign nationals of the US (devtools/limits.py), so its
assessment must match that of a plain directive saying just that, over the same registry.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from devtools.broker import LocalBroker
from devtools.limits import directive_at_limits, past_each_limit
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.stack import Stack
from shared.contracts import limits as L
from shared.contracts.catalogue import DIRECTIVES, ENFORCEMENT, IMPACT, SERVICES, dead_letter_topic
from shared.contracts.enforcement import DirectiveEnforced
from shared.contracts.impact import ImpactAssessed
from shared.runtime.auth import Role
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

pytestmark = pytest.mark.kafka
TIMEOUT = 180
PLAIN = {
    "directive_id": "PLAIN-FN",
    "title": "Foreign nationals of the US",
    "scope": {
        "models": ["fable-5"],
        "selector": {"kind": "foreign_national", "home_country": "US"},
        "enforcement_deadline_s": 120,
    },
}


@pytest.fixture(scope="module")
def limits_kafka(kafka_dir: Path, kafka_secrets: Path) -> LocalBroker:
    with LocalBroker(kafka_dir.with_name("limits-kafka"), secrets=kafka_secrets) as broker:
        yield broker


def post(stack: Stack, path: str, body: dict, key: str | None = None) -> httpx.Response:
    """As the emergency role acting alone (these limits are not about four eyes: test_mission is)."""
    headers = {**stack.token("erin", Role.EMERGENCY), **({"Idempotency-Key": key} if key else {})}
    params = {"emergency_reason": "limits test"}
    return httpx.post(f"{stack.intake.url}{path}", json=body, headers=headers, params=params, timeout=60)


async def enforced(settings: KafkaSettings, directive_id: str, action: str) -> DirectiveEnforced:
    async with TopicReader(settings, ENFORCEMENT) as status:
        return await status.wait_for(
            lambda m: isinstance(m, DirectiveEnforced) and m.directive_id == directive_id and m.action == action,
            TIMEOUT,
            f"{action} of {directive_id}",
        )


async def assessed(settings: KafkaSettings, directive_id: str, action: str) -> ImpactAssessed:
    async with TopicReader(settings, IMPACT) as impact:
        return await impact.wait_for(
            lambda m: isinstance(m, ImpactAssessed) and m.directive_id == directive_id and m.action == action,
            TIMEOUT,
            f"assessment of {directive_id}",
        )


async def dead_letters(settings: KafkaSettings) -> int:
    count = 0
    for service in SERVICES:
        count += len([r async for r in records_to_end(settings, dead_letter_topic(service), "limits-check")])
    return count


async def test_a_directive_at_every_limit_is_enforced_survives_restarts_and_is_lifted(
    limits_kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = KafkaSettings(bootstrap=limits_kafka.bootstrap)
    await apply_topics(settings)
    stack = Stack(limits_kafka.bootstrap, tmp_path_factory.mktemp("limits-stack"), access=limits_kafka.access)
    await load_registry(limits_kafka.bootstrap, registry_population.generate(600, seed=23))
    await asyncio.to_thread(stack.start)
    body = directive_at_limits("LIMITS")
    directive_id = body["directive_id"]
    clusters = {c.cluster_id for c in stack.clusters}
    try:
        assert (await asyncio.to_thread(post, stack, "/directives", PLAIN)).status_code == 202
        plain = await assessed(settings, "PLAIN-FN", "restrict")
        await enforced(settings, "PLAIN-FN", "restrict")

        key = uuid.uuid4().hex
        first = await asyncio.to_thread(post, stack, "/directives", body, key)
        retried = await asyncio.to_thread(post, stack, "/directives", body, key)
        assert first.status_code == 202, first.text[:500]
        assert (retried.status_code, retried.json()) == (202, first.json())
        at_limits = await assessed(settings, directive_id, "restrict")
        assert len(at_limits.model_digests) == L.MAX_MODELS
        assert at_limits.model_digests["fable-5"] == plain.model_digests["fable-5"]
        assert at_limits.affected_users == plain.affected_users > 0
        restrict = await enforced(settings, directive_id, "restrict")
        assert set(restrict.clusters) == clusters

        for limit, (past, named) in past_each_limit("PAST-LIMIT").items():
            refused = await asyncio.to_thread(post, stack, "/directives", past)
            said = refused.text
            assert refused.status_code in (400, 413, 422) and named in said, (limit, refused.status_code, said[:300])

        await asyncio.to_thread(stack.stop)
        await asyncio.to_thread(stack.start)  # every service restarted over the at-limit directive
        ready = {
            name: (await asyncio.to_thread(httpx.get, f"{proc.url}/readyz", timeout=5)).status_code
            for name, proc in stack.processes.items()
        }
        assert set(ready.values()) == {200}, ready
        shown = await asyncio.to_thread(
            httpx.get,
            f"{stack.intake.url}/directives/{directive_id}",
            headers=stack.token("vic", Role.VIEWER),
            timeout=30,
        )
        assert shown.status_code == 200 and shown.json()["revision"] == 1
        assert len(shown.json()["scope"]["models"]) == L.MAX_MODELS

        lifted = await asyncio.to_thread(
            post, stack, f"/directives/{directive_id}/lift", {"reason": "limits"}, uuid.uuid4().hex
        )
        assert lifted.status_code == 202, lifted.text
        lift = await enforced(settings, directive_id, "lift")
        assert set(lift.clusters) == clusters
        assert {p.state for p in lift.clusters.values()} == {"applied"}

        ids = {directive_id, "PLAIN-FN"}
        published = [r.key.decode() async for r in records_to_end(settings, DIRECTIVES, "limits-check")]
        assert set(published) == ids and published.count(directive_id) == 2  # issued once, lifted once
        assert await dead_letters(settings) == 0
    finally:
        await asyncio.to_thread(stack.stop)
