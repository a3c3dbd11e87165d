"""The enforcement service's wiring, one test body on both transports (FastStream's pattern): in memory
(TestKafkaBroker, no broker, runs under -m 'not kafka') and on the session's real broker (with_real)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.kafka import TestKafkaBroker
from pyroaring import BitMap

from services.enforcement.app import EnforcementService, build
from services.enforcement.settings import EnforcementSettings
from shared.contracts.catalogue import ACKS, IMPACT, key_of
from shared.contracts.set_copies import decode_chunk
from shared.runtime.settings import KafkaSettings
from tests.unit.enforcement.scenario import SETS, assessment, heartbeat

_runs = itertools.count(1)
TRANSPORTS = ["memory", pytest.param("kafka", marks=pytest.mark.kafka)]


@pytest.fixture(params=TRANSPORTS)
def kafka_settings(request: pytest.FixtureRequest) -> KafkaSettings | None:
    """None in memory; the session broker's settings on the real one (its fixture only started then)."""
    return KafkaSettings(bootstrap=request.getfixturevalue("bootstrap")) if request.param == "kafka" else None


@pytest.fixture
async def wired(
    kafka_settings: KafkaSettings | None, tmp_path: Path
) -> AsyncIterator[tuple[EnforcementService, object]]:
    """The service built from settings, its broker under TestKafkaBroker, in memory or on the real broker."""
    real = kafka_settings is not None
    kafka = kafka_settings or KafkaSettings()
    service = build(EnforcementSettings(kafka=kafka, state_dir=tmp_path, heartbeat_grace_s=0))
    try:
        async with TestKafkaBroker(service.broker, with_real=real) as broker:
            yield service, broker
    finally:
        service.store.close()


async def published_copies(service: EnforcementService, count: int, timeout: float = 60) -> list[BitMap]:
    """The users of the set-copy chunks the service published (once `count` came)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        chunks = [decode_chunk(call.args[0])[2] for call in service.sets.mock.call_args_list]
        if len(chunks) >= count or asyncio.get_running_loop().time() > deadline:
            return chunks
        await asyncio.sleep(0.1)


async def sent_commands(service: EnforcementService, directive: str, cluster: str, timeout: float = 60) -> list:
    """The commands the service published for this directive and cluster (on the real broker, once they came)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        sent = [
            c
            for c in (call.args[0] for call in service.commands.mock.call_args_list)
            if c.get("directive_id") == directive and c.get("cluster_id") == cluster
        ]
        if sent or asyncio.get_running_loop().time() > deadline:
            return sent
        await asyncio.sleep(0.1)


async def test_an_assessment_reaches_a_known_cluster_as_set_copies_and_a_restrict_command(
    wired, kafka_settings: KafkaSettings | None
) -> None:
    service, broker = wired
    run = next(_runs)
    directive, cluster = f"TWIN-{run}-{id(service)}", f"twin-{run}-{id(service) % 10_000}"
    assessed, chunks = assessment(directive=directive)
    for topic, message in [
        (ACKS, heartbeat(cluster, *sorted(SETS))),
        (IMPACT, assessed),
        *[(IMPACT, c) for c in chunks],
    ]:
        await broker.publish(message, topic=topic.name, key=key_of(topic, message))
    copies = await published_copies(service, 1)
    assert copies and all(copy in SETS.values() for copy in copies)  # each a model's set, binary
    assert service.core.rollouts[(directive, 1, "restrict")].clusters[cluster].attempts == 1
    if kafka_settings is None:
        return  # in memory no broker acknowledges the copies with offsets, so no command can reference them
    sent = await sent_commands(service, directive, cluster)
    assert sent and {c["type"] for c in sent} == {"RestrictCommand"}
    assert {ref["model"] for c in sent for ref in c["sets"]} == set(SETS)
    assert sorted(map(len, await published_copies(service, len(SETS)))) == sorted(map(len, SETS.values()))
