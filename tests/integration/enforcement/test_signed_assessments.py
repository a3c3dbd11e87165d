"""Enforcement on the real broker acts only on assessments signed by a current impact key: an assessment and its
chunks signed by a retired impact key or by a key id it does not know are dead-lettered naming the key, and send
no command and change no status; the same assessment signed by the current key is enforced."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyroaring import BitMap

from devtools.waiting import eventually
from services.enforcement.app import EnforcementService, build
from shared.contracts.catalogue import ACKS, COMMANDS, ENFORCEMENT, IMPACT, Topic, dead_letter_topic, key_of
from shared.contracts.serving import AgentHeartbeat
from shared.runtime.kafka import producing
from shared.runtime.record_signing import SigningSettings, encoded, signed_headers
from shared.runtime.settings import KafkaSettings
from shared.runtime.signing import KeySet, Signer
from tests.integration.enforcement.conftest import TopicReader, impact, settings_for

pytestmark = pytest.mark.kafka

DLQ = dead_letter_topic("enforcement")
IMPACT_KEY = Signer.generate("impact-2026")
RETIRED_IMPACT_KEY = Signer.generate("impact-2025")  # in the trusted set, retired an hour ago
STRANGER = Signer.generate("impact-stranger")  # a key id the trusted set does not hold


@contextlib.asynccontextmanager
async def signed_enforcement(bootstrap: str, state: Path, cluster: str, agent: Signer):
    """Enforcement with signing on: trusts the impact keys above, the agent key for `cluster`."""
    keys = state / "keys"
    keys.mkdir()
    (keys / "enforcement.pem").write_bytes(Signer.generate("enforcement-k").pem())
    trusted = KeySet([IMPACT_KEY.public(), RETIRED_IMPACT_KEY.public(datetime.now(UTC) - timedelta(hours=1))])
    (keys / "impact.json").write_text(trusted.to_json())
    (keys / "agents.json").write_text(KeySet([agent.public(subject=cluster)]).to_json())
    settings = settings_for(bootstrap, state).model_copy(
        update={
            "agent_keys_file": keys / "agents.json",
            "signing": SigningSettings(
                mode="on",
                key_file=keys / "enforcement.pem",
                key_id="enforcement-k",
                trusted_keys_file=keys / "impact.json",
            ),
        }
    )
    service: EnforcementService = build(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def publish_signed(bootstrap: str, topic: Topic, messages: list[Any], signer: Signer) -> list[bytes]:
    """Produce each message signed by `signer`; the values as produced."""
    values = []
    async with producing(KafkaSettings(bootstrap=bootstrap), "tests-signed") as producer:
        for message in messages:
            value, key = encoded(message), key_of(topic, message)
            headers = [(k, v.encode()) for k, v in signed_headers(signer, topic, key, value).items()]
            await producer.send_and_wait(topic.name, value, key=key, headers=headers)
            values.append(value)
    return values


def letters_for(dlq: TopicReader, values: list[bytes]) -> list | None:
    """The dead letters of these values, once there is one for each."""
    wanted = {base64.b64encode(v).decode() for v in values}
    found = [d for d in dlq.messages if d.topic == IMPACT.name and d.value_b64 in wanted]
    return found if len({d.value_b64 for d in found}) == len(wanted) else None


@pytest.mark.parametrize(
    ("signer", "reason"),
    [
        (RETIRED_IMPACT_KEY, "SignatureRefused: retired signing key (key id 'impact-2025')"),
        (STRANGER, "SignatureRefused: unknown signing key (key id 'impact-stranger')"),
    ],
    ids=["retired", "unknown"],
)
async def test_an_assessment_signed_by_a_retired_or_unknown_impact_key_is_refused_and_changes_nothing(
    bootstrap: str, unique: str, tmp_path: Path, signer: Signer, reason: str
) -> None:
    cluster, model, refused_id, fence_id = f"c-{unique}", f"m-{unique}", f"BAD-{unique}", f"OK-{unique}"
    agent = Signer.generate(f"agent-{unique}")
    bad = impact(refused_id, {model: BitMap(range(120))}, ids_per_chunk=40)  # a head and three chunks
    async with (
        TopicReader(bootstrap, DLQ) as dlq,
        TopicReader(bootstrap, COMMANDS) as sent,
        TopicReader(bootstrap, ENFORCEMENT) as status,
        signed_enforcement(bootstrap, tmp_path, cluster, agent) as service,
    ):
        beat = AgentHeartbeat(producer=f"agent-{cluster}", cluster_id=cluster, models=[model], ready=True)
        await publish_signed(bootstrap, ACKS, [beat], agent)
        await eventually(lambda: cluster in service.core.clusters, what="the signed heartbeat")

        values = await publish_signed(bootstrap, IMPACT, bad, signer)
        letters = await eventually(
            lambda: letters_for(dlq, values),
            what="a dead letter for the assessment and each chunk",
        )
        assert {letter.reason for letter in letters} == {reason}
        assert {letter.consumer for letter in letters} == {"enforcement"}
        # Nothing changed: no assessment assembled, no rollout, no command, no status event.
        assert not [k for k in [*service.core.rollouts, *service.core.assemblies] if k[0] == refused_id]

        # The same assessment signed by the current key is enforced; by then any command for the refused one
        # would have been sent before it (one consumer, commands of one cluster on one partition).
        fence = impact(fence_id, {model: BitMap(range(120))}, ids_per_chunk=40)
        await publish_signed(bootstrap, IMPACT, fence, IMPACT_KEY)
        await eventually(
            lambda: sent.where(type="RestrictCommand", directive_id=fence_id), what="the good one's commands"
        )
        await eventually(lambda: status.where(directive_id=fence_id), what="the good one's status")
        assert sent.where(directive_id=refused_id) == []
        assert status.where(directive_id=refused_id) == []
        assert not [k for k in service.core.rollouts if k[0] == refused_id]
