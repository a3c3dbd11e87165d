"""Restrictions by reference on the real broker: the agent reads the set copies a command names from
serving.sets.v1, checks each chunk (signature, digest, envelope), and refuses what does not hold up, keeping
what it serves and consuming on. Signing is on."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroaring import BitMap

from services.agent.app import Agent, build
from shared.contracts.bitmaps import scope_digest, set_digest
from shared.contracts.catalogue import ACKS, COMMANDS, SETS, dead_letter_topic
from shared.contracts.serving import RestrictCommand
from shared.contracts.set_copies import HEADER_V1, MAGIC_V1, SetReference, encode_set, set_key, value_digest
from shared.runtime.kafka import producer
from shared.runtime.record_signing import SigningSettings, encoded
from shared.runtime.settings import KafkaSettings
from shared.runtime.signing import KeySet, Signer
from shared.runtime.topics import partition_for
from tests.integration.agent.conftest import MODELS, TopicReader, agent_settings

pytestmark = pytest.mark.kafka


@dataclass
class Rig:
    """A signing agent on the real broker, enforcement's key, and a producer for commands and set copies."""

    agent: Agent
    enforcement: Signer
    producer: Any
    acks: TopicReader
    letters: TopicReader

    @property
    def cluster(self) -> str:
        return self.agent.settings.cluster_id

    async def publish_values(
        self, directive: str, revision: int, model: str, values: list[bytes], signer: Signer | None = None
    ) -> tuple[int, list[int]]:
        key = set_key(directive, revision, model, 0)
        partition = partition_for(SETS, key)
        offsets = []
        for value in values:
            headers = (signer or self.enforcement).headers(SETS.name, key, value)
            sent = await self.producer.send_and_wait(
                SETS.name, value, key=key, partition=partition, headers=[(k, v.encode()) for k, v in headers.items()]
            )
            offsets.append(sent.offset)
        return partition, offsets

    async def copy(self, directive: str, revision: int, model: str, users: BitMap, **options: Any) -> SetReference:
        ids_per_chunk, digest = options.pop("ids_per_chunk", 1000), options.pop("digest", None)
        if options.pop("layout_1", False):
            parts = _by_count(users, ids_per_chunk)
            values = [_layout_1(part, i, len(parts)) for i, part in enumerate(parts)]
        else:
            values = encode_set(users, ids_per_chunk=ids_per_chunk, max_bytes=1_000_000).values
        partition, offsets = await self.publish_values(directive, revision, model, values, **options)
        return SetReference(
            model=model,
            version=0,
            partition=partition,
            offsets=offsets,
            chunk_digests=[value_digest(v) for v in values],
            digest=digest or set_digest(users),
        )

    async def restrict(self, directive: str, revision: int, refs: list[SetReference]) -> RestrictCommand:
        command = RestrictCommand(
            producer="enforcement",
            correlation_id=directive,
            cluster_id=self.cluster,
            directive_id=directive,
            revision=revision,
            chunk=0,
            chunks=1,
            sets=refs,
            expected_digest=scope_digest({ref.model: ref.digest for ref in refs}),
        )
        key, value = self.cluster.encode(), encoded(command)
        headers = self.enforcement.headers(COMMANDS.name, key, value)
        await self.producer.send_and_wait(
            COMMANDS.name, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
        )
        return command

    async def ack_of(self, command: RestrictCommand) -> dict:
        return await self.acks.wait_for(lambda m: m.get("causation_id") == command.event_id, f"ack of {command.type}")


def _by_count(users: BitMap, ids_per_chunk: int) -> list[BitMap]:
    """Chunks of ids_per_chunk ids as layout 1 split them: a range may be cut between two chunks."""
    ids = list(users)
    return [BitMap(ids[start : start + ids_per_chunk]) for start in range(0, len(ids), ids_per_chunk)] or [BitMap()]


def _layout_1(users: BitMap, index: int, chunks: int) -> bytes:
    """A chunk value in layout 1 (no range digests), as records already on the topic carry them."""
    raw = users.serialize()
    return HEADER_V1.pack(MAGIC_V1, 0, index, chunks, len(raw)) + raw


@pytest.fixture
async def rig(bootstrap: str, unique: str, tmp_path: Path) -> AsyncIterator[Rig]:
    own, enforcement = Signer.generate(f"agent-{unique}"), Signer.generate("enforcement-sets")
    (tmp_path / "agent.pem").write_bytes(own.pem())
    (tmp_path / "enforcement.json").write_text(KeySet([enforcement.public()]).to_json())
    signing = SigningSettings(
        mode="on", key_file=tmp_path / "agent.pem", key_id=own.key_id, trusted_keys_file=tmp_path / "enforcement.json"
    )
    settings = agent_settings(bootstrap, f"sets-{unique}", tmp_path).model_copy(update={"signing": signing})
    agent = build(settings)
    client = producer(KafkaSettings(bootstrap=bootstrap), f"tests-sets-{unique}")
    await client.start()
    async with (
        TopicReader(bootstrap, ACKS.name) as acks,
        TopicReader(bootstrap, dead_letter_topic("agent").name) as letters,
    ):
        await agent.start()
        try:
            yield Rig(agent, enforcement, client, acks, letters)
        finally:
            await agent.stop()
            await client.stop()


async def _hold_revision_one(rig: Rig, directive: str) -> str:
    fable = await rig.copy(directive, 1, "fable-5", BitMap(range(0, 5000, 2)))
    applied = await rig.ack_of(await rig.restrict(directive, 1, [fable]))
    assert applied["type"] == "CommandApplied"
    return applied["digest"]


async def _refused_and_unchanged(rig: Rig, directive: str, command: RestrictCommand, held: str, why: str) -> str:
    refusal = await rig.ack_of(command)
    assert refusal["type"] == "CommandFailed" and refusal["reason"].startswith("refused: set copy of")
    assert why in refusal["reason"]
    state = rig.agent.holding.state
    assert state.held[directive].revision == 1 and state.digest(directive) == held
    assert 2 in state.held[directive].sets["fable-5"] and 3 not in state.held[directive].sets["fable-5"]
    return refusal["reason"]


async def _still_consuming(rig: Rig, directive: str) -> None:
    good = await rig.copy(directive, 2, "fable-5", BitMap([3]))
    applied = await rig.ack_of(await rig.restrict(directive, 2, [good]))
    assert applied["type"] == "CommandApplied"
    assert rig.agent.holding.state.held[directive].sets == {"fable-5": BitMap([3])}


async def test_a_restriction_by_reference_is_read_checked_and_applied_for_every_model(rig: Rig, unique: str) -> None:
    directive = f"D-{unique}"
    fable, mythos = BitMap(range(0, 5 << 16, 7)), BitMap([7, 8, 9])  # fable-5: five ranges, a chunk each
    refs = [
        await rig.copy(directive, 1, "fable-5", fable, ids_per_chunk=2_000),
        await rig.copy(directive, 1, "mythos-5", mythos),
    ]
    assert len(refs[0].offsets) == 5
    applied = await rig.ack_of(await rig.restrict(directive, 1, refs))
    assert applied["type"] == "CommandApplied"
    assert applied["digest"] == scope_digest({"fable-5": set_digest(fable), "mythos-5": set_digest(mythos)})
    assert rig.agent.holding.store.load()[0].held[directive].sets == {"fable-5": fable, "mythos-5": mythos}
    assert MODELS == ["fable-5", "mythos-5"]


async def _shared_copies(rig: Rig, directive: str, users: BitMap) -> list[SetReference]:
    """Both models' copies of one set, as enforcement publishes them: the same values under each model's key."""
    fable = await rig.copy(directive, 1, "fable-5", users, ids_per_chunk=2_000)
    mythos = await rig.copy(directive, 1, "mythos-5", users, ids_per_chunk=2_000)
    assert fable.chunk_digests == mythos.chunk_digests
    assert (fable.partition, fable.offsets) != (mythos.partition, mythos.offsets)
    return [fable, mythos]


async def test_models_sharing_one_set_fetch_it_once_and_hold_it_as_two_sets(
    rig: Rig, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    directive, users = f"D-{unique}", BitMap(range(0, 3 << 16, 5))
    refs = await _shared_copies(rig, directive, users)
    reader = rig.agent.handling.sets
    assert reader is not None
    fetched: list[str] = []
    records = reader._records

    async def counted(ref: SetReference, bounds: dict) -> list:
        fetched.append(ref.model)
        return await records(ref, bounds)

    monkeypatch.setattr(reader, "_records", counted)
    applied = await rig.ack_of(await rig.restrict(directive, 1, refs))
    assert applied["type"] == "CommandApplied"
    assert applied["digest"] == scope_digest({"fable-5": set_digest(users), "mythos-5": set_digest(users)})
    assert fetched == ["fable-5"]
    held = rig.agent.holding.state.held[directive]
    assert held.sets == {"fable-5": users, "mythos-5": users}
    assert held.sets["fable-5"] is not held.sets["mythos-5"]  # a delta to one model leaves the other as it is
    assert held.set_digests["fable-5"] is not held.set_digests["mythos-5"]
    assert rig.agent.holding.store.load()[0].held[directive].sets == {"fable-5": users, "mythos-5": users}


async def test_a_model_sharing_another_s_chunks_is_still_refused_when_its_set_digest_is_not_theirs(
    rig: Rig, unique: str
) -> None:
    directive = f"D-{unique}"
    fable, mythos = await _shared_copies(rig, directive, BitMap(range(0, 3 << 16, 5)))
    mislabelled = mythos.model_copy(update={"digest": set_digest(BitMap([3]))})
    refusal = await rig.ack_of(await rig.restrict(directive, 1, [fable, mislabelled]))
    assert refusal["type"] == "CommandFailed" and "set copy of mythos-5" in refusal["reason"]
    assert "range digests combine to" in refusal["reason"]
    assert directive not in rig.agent.holding.state.held


async def test_a_reference_to_an_offset_not_on_the_topic_is_refused(rig: Rig, unique: str) -> None:
    directive = f"D-{unique}"
    held = await _hold_revision_one(rig, directive)
    real = await rig.copy(directive, 2, "fable-5", BitMap([3]))
    beyond = real.model_copy(update={"offsets": [real.offsets[0] + 1_000_000]})
    command = await rig.restrict(directive, 2, [beyond])
    await _refused_and_unchanged(rig, directive, command, held, "is not on serving.sets.v1")
    await _still_consuming(rig, directive)


async def test_a_chunk_whose_bytes_do_not_match_the_command_s_digest_is_refused(rig: Rig, unique: str) -> None:
    directive = f"D-{unique}"
    held = await _hold_revision_one(rig, directive)
    real = await rig.copy(directive, 2, "fable-5", BitMap([3]))
    other = value_digest(encode_set(BitMap([4]), 1000, 1_000_000).values[0])
    command = await rig.restrict(directive, 2, [real.model_copy(update={"chunk_digests": [other]})])
    await _refused_and_unchanged(rig, directive, command, held, "do not match the command's digest")
    await _still_consuming(rig, directive)


async def test_a_chunk_signed_by_an_unknown_key_is_refused(rig: Rig, unique: str) -> None:
    directive = f"D-{unique}"
    held = await _hold_revision_one(rig, directive)
    forged = await rig.copy(directive, 2, "fable-5", BitMap([3]), signer=Signer.generate("enforcement-sets"))
    command = await rig.restrict(directive, 2, [forged])
    reason = await _refused_and_unchanged(rig, directive, command, held, "chunk 0")
    assert "bad signature" in reason or "unknown key" in reason
    await _still_consuming(rig, directive)


async def test_a_garbage_set_chunk_is_dead_lettered_refused_and_the_agent_keeps_consuming(
    rig: Rig, unique: str
) -> None:
    directive = f"D-{unique}"
    held = await _hold_revision_one(rig, directive)
    garbage = HEADER_V1.pack(b"CMS1", 0, 0, 1, 12) + b"not roaring!"  # a signed record that is not a set chunk
    truncated = encode_set(BitMap(range(100)), 1000, 1_000_000).values[0][:10]
    for n, value in enumerate((garbage, truncated)):
        partition, offsets = await rig.publish_values(directive, 2, "fable-5", [value])
        ref = SetReference(
            model="fable-5",
            version=0,
            partition=partition,
            offsets=offsets,
            chunk_digests=[value_digest(value)],
            digest=set_digest(BitMap([3])),
        )
        command = await rig.restrict(directive, 2, [ref])
        why = "not a valid roaring bitmap" if n == 0 else "truncated"
        await _refused_and_unchanged(rig, directive, command, held, why)
        letter = await rig.letters.wait_for(
            lambda m, v=value: m.get("value_b64") and base64.b64decode(m["value_b64"]) == v,
            "dead letter of the bad set chunk",
        )
        assert letter["topic"] == SETS.name and letter["offset"] == offsets[0] and why in letter["reason"]
    await _still_consuming(rig, directive)


async def test_a_copy_whose_range_digests_do_not_combine_to_the_command_s_set_digest_is_refused(
    rig: Rig, unique: str
) -> None:
    directive = f"D-{unique}"
    held = await _hold_revision_one(rig, directive)
    # every chunk's bytes are what the command names, but the set they make is not the one the command says
    mislabelled = await rig.copy(directive, 2, "fable-5", BitMap([3]), digest=set_digest(BitMap([3, 4])))
    command = await rig.restrict(directive, 2, [mislabelled])
    reason = await _refused_and_unchanged(rig, directive, command, held, "range digests combine to")
    assert set_digest(BitMap([3, 4])) in reason
    await _still_consuming(rig, directive)


async def test_a_copy_in_layout_1_without_range_digests_is_still_applied_and_hashed_when_held(
    rig: Rig, unique: str
) -> None:
    directive = f"D-{unique}"
    fable = BitMap(range(60_000, 140_000, 7))  # 1,000-id chunks cut the ranges 0, 1 and 2 across chunks
    ref = await rig.copy(directive, 1, "fable-5", fable, layout_1=True)
    assert len(ref.offsets) > 10
    applied = await rig.ack_of(await rig.restrict(directive, 1, [ref]))
    assert applied["type"] == "CommandApplied" and applied["digest"] == scope_digest({"fable-5": set_digest(fable)})
    assert rig.agent.holding.state.held[directive].sets == {"fable-5": fable}
