"""Key rotation on a running stack: a directive or a command signed with a key past its retire time is refused
(impact dead-letters the directive, the agent reports `refused: retired signing key` on the acks topic), the same
bytes signed with the current key are acted on, and an old key still inside its retire time is accepted."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyroaring import BitMap

from devtools.broker import LocalBroker
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.stack import Stack
from shared.contracts.bitmaps import encode_bitmap, sets_digest
from shared.contracts.catalogue import ACKS, COMMANDS, DIRECTIVES, IMPACT, dead_letter_topic
from shared.contracts.deadletter import DeadLetter
from shared.contracts.directives import DirectiveIssued
from shared.contracts.impact import ImpactAssessed
from shared.contracts.serving import CommandApplied, CommandFailed, RestrictCommand
from shared.runtime.kafka import producing, records_to_end
from shared.runtime.settings import KafkaSettings
from shared.runtime.signing import KeySet, Signer
from shared.runtime.topics import apply_topics
from tests.e2e.test_forgeries import directive_body, enforced

pytestmark = pytest.mark.kafka

USERS_N = 300
TIMEOUT = 180
NOW = datetime.now(UTC)
RETIRED = {name: Signer.generate(f"{name}-2025") for name in ("intake", "enforcement")}  # retired an hour ago
PREVIOUS = {name: Signer.generate(f"{name}-2026") for name in ("intake", "enforcement")}  # retires tomorrow


def rotate(stack: Stack, name: str) -> None:
    """`name`'s trusted key set as after two rotations: the current key, the previous one (inside its retire
    time) and an older one whose retire time has passed."""
    current = stack.record_signer(name)
    keys = [
        current.public(),
        PREVIOUS[name].public(NOW + timedelta(days=1)),
        RETIRED[name].public(NOW - timedelta(hours=1)),
    ]
    stack.record_keys(name).write_text(KeySet(keys).to_json())


async def produce(settings: KafkaSettings, topic: str, key: bytes, value: bytes, signer: Signer) -> None:
    headers = [("content-type", b"application/json")]
    headers += [(k, v.encode()) for k, v in signer.headers(topic, key, value).items()]
    async with producing(settings, "rotation-check", linger_ms=0) as producer:
        await producer.send_and_wait(topic, value, key=key, headers=headers)


async def ack_of(settings: KafkaSettings, event_id: str) -> CommandApplied | CommandFailed:
    async with TopicReader(settings, ACKS) as acks:
        return await acks.wait_for(
            lambda m: isinstance(m, (CommandApplied, CommandFailed)) and m.causation_id == event_id,
            TIMEOUT,
            f"the ack of {event_id}",
        )


async def assessed(settings: KafkaSettings, directive_id: str) -> ImpactAssessed:
    async with TopicReader(settings, IMPACT) as impact:
        return await impact.wait_for(
            lambda m: isinstance(m, ImpactAssessed) and m.directive_id == directive_id, TIMEOUT, f"{directive_id}"
        )


def restriction(cluster: str, directive_id: str) -> RestrictCommand:
    users = BitMap(range(1, 11))
    return RestrictCommand(
        producer="enforcement",
        cluster_id=cluster,
        directive_id=directive_id,
        revision=1,
        model="fable-5",
        chunk=0,
        chunks=1,
        users=encode_bitmap(users),
        expected_digest=sets_digest({"fable-5": users}),
    )


@pytest.fixture(scope="module")
def rotation_kafka(kafka_dir: Path, kafka_secrets: Path) -> LocalBroker:
    with LocalBroker(kafka_dir.with_name("rotation-kafka"), secrets=kafka_secrets) as broker:
        yield broker


async def test_a_retired_key_is_refused_and_a_rotated_key_inside_its_retire_time_accepted(
    rotation_kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = KafkaSettings(bootstrap=rotation_kafka.bootstrap)
    await apply_topics(settings)
    stack = Stack(rotation_kafka.bootstrap, tmp_path_factory.mktemp("rotation-stack"), access=rotation_kafka.access)
    for name in RETIRED:
        rotate(stack, name)  # before the services start: they read their trusted keys at start
    await load_registry(rotation_kafka.bootstrap, registry_population.generate(USERS_N, seed=5))
    await asyncio.to_thread(stack.start)
    try:
        await asyncio.to_thread(stack.issue, directive_body())
        await enforced(settings, "restrict")
        issued = None
        async for record in records_to_end(settings, DIRECTIVES, "rotation-check"):
            if record.value and b'"DirectiveIssued"' in record.value:
                issued = DirectiveIssued.model_validate_json(record.value)
        assert issued is not None

        # A directive signed by intake's retired key: dead-lettered by impact, naming the key; no assessment.
        def copy(directive_id: str) -> bytes:
            fresh = issued.model_copy(
                update={"directive_id": directive_id, "correlation_id": directive_id, "event_id": uuid.uuid4().hex}
            )
            return fresh.model_dump_json().encode()

        value = copy("ROTATE-RETIRED")
        await produce(settings, DIRECTIVES.name, b"ROTATE-RETIRED", value, RETIRED["intake"])
        async with TopicReader(settings, dead_letter_topic("impact")) as letters:
            letter = await letters.wait_for(
                lambda m: isinstance(m, DeadLetter) and "retired signing key" in m.reason, TIMEOUT, "retired directive"
            )
        assert letter.topic == DIRECTIVES.name and "intake-2025" in letter.reason
        # The same bytes signed with the current key are assessed.
        await produce(settings, DIRECTIVES.name, b"ROTATE-RETIRED", value, stack.record_signer("intake"))
        assert (await assessed(settings, "ROTATE-RETIRED")).revision == 1
        # Rotation: the previous key, still inside its retire time, is accepted.
        await produce(settings, DIRECTIVES.name, b"ROTATE-PREV", copy("ROTATE-PREV"), PREVIOUS["intake"])
        assert (await assessed(settings, "ROTATE-PREV")).revision == 1

        # A command signed by enforcement's retired key: refused on the acks topic, naming the key.
        cluster = next(c.cluster_id for c in stack.clusters if "fable-5" in c.models)
        command = restriction(cluster, "ROTATE-CMD")
        value = command.model_dump_json().encode()
        await produce(settings, COMMANDS.name, cluster.encode(), value, RETIRED["enforcement"])
        refused = await ack_of(settings, command.event_id)
        assert isinstance(refused, CommandFailed)
        assert refused.reason == "refused: retired signing key (key id 'enforcement-2025')"
        # The same bytes signed with the current key are applied (the refusal changed nothing: no replay).
        await produce(settings, COMMANDS.name, cluster.encode(), value, stack.record_signer("enforcement"))
        async with TopicReader(settings, ACKS) as acks:
            applied = await acks.wait_for(
                lambda m: isinstance(m, CommandApplied) and m.directive_id == "ROTATE-CMD", TIMEOUT, "applied"
            )
        assert applied.cluster_id == cluster and applied.action == "restrict"
        # And a command signed by the previous key, inside its retire time, is applied.
        rotated = restriction(cluster, "ROTATE-CMD-PREV")
        await produce(
            settings, COMMANDS.name, cluster.encode(), rotated.model_dump_json().encode(), PREVIOUS["enforcement"]
        )
        async with TopicReader(settings, ACKS) as acks:
            applied = await acks.wait_for(
                lambda m: isinstance(m, CommandApplied) and m.directive_id == "ROTATE-CMD-PREV", TIMEOUT, "rotated"
            )
        assert applied.cluster_id == cluster
    finally:
        await asyncio.to_thread(stack.stop)
