"""The enforcement service's wiring on FastStream's in-memory broker: an assessment and a cluster's heartbeat in,
restrict commands for that cluster out (the in-memory twin of tests/integration/enforcement/test_flow.py)."""

from __future__ import annotations

from pathlib import Path

from faststream.kafka import TestKafkaBroker

from services.enforcement.app import build
from services.enforcement.settings import EnforcementSettings
from shared.contracts.catalogue import ACKS, IMPACT, key_of
from tests.unit.enforcement.scenario import SETS, assessment, heartbeat


async def test_an_assessment_reaches_a_known_cluster_as_restrict_commands(tmp_path: Path) -> None:
    service = build(EnforcementSettings(state_dir=tmp_path, heartbeat_grace_s=0))
    assessed, chunks = assessment()
    async with TestKafkaBroker(service.broker) as broker:
        for topic, message in [
            (ACKS, heartbeat("us-east", *sorted(SETS))),
            (IMPACT, assessed),
            *[(IMPACT, c) for c in chunks],
        ]:
            await broker.publish(message, topic=topic.name, key=key_of(topic, message))
        sent = [call.args[0] for call in service.commands.mock.call_args_list]
    service.store.close()
    restricts = [c for c in sent if c.get("type") == "RestrictCommand"]
    assert restricts and {c["cluster_id"] for c in restricts} == {"us-east"}
    assert service.core.rollouts[("D-1", 1, "restrict")].clusters["us-east"].attempts == 1
