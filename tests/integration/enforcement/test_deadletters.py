"""Poison messages on every topic enforcement consumes land on dlq.enforcement.v1; consumption goes on."""

from __future__ import annotations

import base64
from pathlib import Path

from pyroaring import BitMap

from devtools.waiting import eventually
from shared.contracts.catalogue import ACKS, ENFORCEMENT, IMPACT, dead_letter_topic
from shared.contracts.impact import AffectedSetChunk
from shared.contracts.serving import AgentHeartbeat
from tests.integration.enforcement.conftest import TopicReader, impact, publish, running

DLQ = dead_letter_topic("enforcement")


def letters_for(dlq: TopicReader, topic: str, raw: bytes) -> list:
    value = base64.b64encode(raw).decode()
    return [d for d in dlq.messages if d.topic == topic and d.value_b64 == value]


async def test_poison_on_the_impact_topic_is_dead_lettered_and_the_next_assessment_is_enforced(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive = f"D-{unique}"
    poison = b'{"type": "ImpactAssessed", "directive_id": "%s", "revision": 0}' % directive.encode()
    corrupt = AffectedSetChunk(
        producer="impact",
        directive_id=f"X-{unique}",
        revision=1,
        action="restrict",
        model="fable-5",
        chunk=0,
        chunks=1,
        users="bm90IGEgYml0bWFw",
    )
    assessed, *chunks = impact(directive, {f"m-{unique}": BitMap([1, 2, 3])})
    async with (
        TopicReader(bootstrap, DLQ) as dlq,
        TopicReader(bootstrap, ENFORCEMENT) as status,
        running(bootstrap, tmp_path),
    ):
        await publish(bootstrap, IMPACT, corrupt, assessed, *chunks, raw=poison, raw_key=directive.encode())
        [letter] = await eventually(lambda: letters_for(dlq, IMPACT.name, poison), what="dead letter")
        assert letter.reason.startswith("invalid message") and letter.consumer == "enforcement"
        [bad_bitmap] = await eventually(
            lambda: letters_for(dlq, IMPACT.name, corrupt.model_dump_json().encode()), what="corrupt bitmap dead letter"
        )
        assert "roaring" in bad_bitmap.reason
        [enforced] = await eventually(
            lambda: status.where(type="DirectiveEnforced", directive_id=directive),
            what="good assessment after the poison",
        )
        assert enforced.clusters == {}


async def test_poison_on_the_acks_topic_is_dead_lettered_and_the_next_heartbeat_is_processed(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster = f"c-{unique}"
    poison = b"this is not json"
    beat = AgentHeartbeat(producer="agent", cluster_id=cluster, models=[f"m-{unique}"], ready=True)
    async with TopicReader(bootstrap, DLQ) as dlq, running(bootstrap, tmp_path) as service:
        await publish(bootstrap, ACKS, beat, raw=poison, raw_key=cluster.encode())
        [letter] = await eventually(lambda: letters_for(dlq, ACKS.name, poison), what="dead letter")
        assert letter.reason and base64.b64decode(letter.key_b64) == cluster.encode()
        await eventually(lambda: cluster in service.core.clusters, what="heartbeat after the poison")
