"""Messages and clock for enforcement unit tests, built from real contracts and real bitmaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyroaring import BitMap

from services.enforcement.app import build_core
from services.enforcement.cluster_commands import RestrictDraft
from services.enforcement.coordinator import Coordinator
from services.enforcement.set_copies import SetCopies
from services.enforcement.tracking import Backoff
from shared.contracts.bitmaps import chunk_bitmap, encode_bitmap, scope_digest, set_digest, union
from shared.contracts.directives import DirectiveScope
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, ImpactAssessed
from shared.contracts.serving import AgentHeartbeat, CommandApplied, CommandFailed, RestrictCommand
from shared.contracts.set_copies import decode_chunk, value_digest

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
# fable-5: ten ranges of 50 ids (a set copy's chunk holds whole ranges); mythos-5 shares some of them
SETS = {"fable-5": BitMap([r << 16 | i for r in range(10) for i in range(50)]), "mythos-5": BitMap(range(40, 50))}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class MemorySets:
    """The sets topic in memory: set copies published through the real SetCopies (encoded, chunked), read back as
    an agent reads them (by offset, checked against the command's digests)."""

    def __init__(self, coordinator: Coordinator, ids_per_chunk: int) -> None:
        self.coordinator = coordinator
        self.records: list[tuple[bytes, bytes]] = []
        self.copies = SetCopies(coordinator.state, self.publish, ids_per_chunk=ids_per_chunk, max_bytes=200_000)

    async def publish(self, key: bytes, values: list[bytes]) -> tuple[int, list[int]]:
        start = len(self.records)
        self.records += [(key, value) for value in values]
        return 0, list(range(start, len(self.records)))

    def place(self, command):
        """A restrict draft as the command sent (its sets placed once); any other command as it is."""
        if not isinstance(command, RestrictDraft):
            return command
        coroutine = self.copies.command(command)
        try:
            coroutine.send(None)  # publish() never waits: the coroutine finishes at once
        except StopIteration as done:
            return done.value
        raise AssertionError("placing a set copy waited")

    def users(self, command: RestrictCommand) -> dict[str, BitMap]:
        per_model = {}
        for ref in command.sets or ():
            values = [self.records[offset][1] for offset in ref.offsets]
            assert [value_digest(v) for v in values] == ref.chunk_digests
            per_model[ref.model] = union(decode_chunk(v)[2] for v in values)
            assert set_digest(per_model[ref.model]) == ref.digest
        return per_model


_SETS_TOPICS: list[MemorySets] = []


def core(**overrides) -> Coordinator:
    ids_per_chunk = overrides.pop("ids_per_chunk", 100)
    coordinator = build_core(Backoff(base_s=1, cap_s=8), **overrides)
    _SETS_TOPICS.append(MemorySets(coordinator, ids_per_chunk))
    return coordinator


def sets_topic(coordinator: Coordinator) -> MemorySets:
    return next(topic for topic in reversed(_SETS_TOPICS) if topic.coordinator is coordinator)


def placed(commands: list) -> list:
    """Commands as sent: each restrict draft placed by the newest core whose rollouts know it."""
    sent = []
    for command in commands:
        if isinstance(command, RestrictDraft):
            topic = next(t for t in reversed(_SETS_TOPICS) if command.key in t.coordinator.rollouts)
            command = topic.place(command)
        sent.append(command)
    return sent


def users_sent(command) -> dict[str, BitMap]:
    """What an agent reads for a restrict command (a draft placed first)."""
    [command] = placed([command])
    topic = next(
        t
        for t in reversed(_SETS_TOPICS)
        if (command.directive_id, command.revision, "restrict") in t.coordinator.rollouts
    )
    return topic.users(command)


def assessment(
    sets=SETS, *, directive="D-1", revision=1, action="restrict", deadline_s=60, ids_per_chunk=300
) -> tuple[ImpactAssessed, list[AffectedSetChunk]]:
    parts = [(m, p) for m in sorted(sets) for p in chunk_bitmap(sets[m], ids_per_chunk)]
    digests = {m: set_digest(b) for m, b in sets.items()}
    assessed = ImpactAssessed(
        event_id=f"assessed-{directive}-{revision}-{action}",
        occurred_at=T0,
        producer="impact",
        directive_id=directive,
        revision=revision,
        action=action,
        scope=DirectiveScope(models=sorted(sets), selector={"kind": "everyone"}, enforcement_deadline_s=deadline_s),
        affected_by_model={m: len(b) for m, b in sets.items()},
        affected_users=len(BitMap.union(*sets.values())),
        model_digests=digests,
        digest=scope_digest(digests),
        registry_offsets={0: 10},
        chunks=len(parts),
    )
    chunks = [
        AffectedSetChunk(
            producer="impact",
            directive_id=directive,
            revision=revision,
            action=action,
            model=m,
            chunk=i,
            chunks=len(parts),
            users=encode_bitmap(p),
        )
        for i, (m, p) in enumerate(parts)
    ]
    return assessed, chunks


def heartbeat(cluster: str, *models: str, held=None) -> AgentHeartbeat:
    return AgentHeartbeat(producer="agent", cluster_id=cluster, models=list(models), held=held or {}, ready=True)


def applied(cluster: str, digest: str, *, directive="D-1", revision=1, action="restrict") -> CommandApplied:
    return CommandApplied(
        producer="agent", cluster_id=cluster, directive_id=directive, revision=revision, action=action, digest=digest
    )


def failed(cluster: str, reason="disk full", *, directive="D-1", revision=1) -> CommandFailed:
    return CommandFailed(producer="agent", cluster_id=cluster, directive_id=directive, revision=revision, reason=reason)


def delta(
    seq: int, model: str, added: BitMap, removed: BitMap, after: BitMap, *, directive="D-1", revision=1
) -> AffectedSetDelta:
    return AffectedSetDelta(
        producer="impact",
        directive_id=directive,
        revision=revision,
        seq=seq,
        model=model,
        added=encode_bitmap(added),
        removed=encode_bitmap(removed),
        model_digest=set_digest(after),
    )


def held_digest(commands: list) -> str:
    """What a faithful agent computes from the set copies its restrict commands reference."""
    per_model: dict[str, BitMap] = {}
    for command in commands:
        for model, users in users_sent(command).items():
            per_model[model] = per_model.get(model, BitMap()) | users
    return scope_digest({m: set_digest(b) for m, b in per_model.items()})


def feed(coordinator: Coordinator, messages, now=T0):
    """Run messages through the core; returns the merged commands and events."""
    commands, events = [], []
    handlers = {
        "ImpactAssessed": "on_assessed",
        "AffectedSetChunk": "on_chunk",
        "AffectedSetDelta": "on_delta",
        "CommandApplied": "on_applied",
        "CommandFailed": "on_failed",
        "AgentHeartbeat": "on_heartbeat",
    }
    for message in messages:
        outcome = getattr(coordinator, handlers[message.type])(message, now)
        commands += outcome.commands
        events += outcome.events
    return commands, events


def of_type(events, name: str) -> list:
    return [e for e in events if e.type == name]


def to(commands, cluster: str) -> list:
    return [c for c in commands if c.cluster_id == cluster]
