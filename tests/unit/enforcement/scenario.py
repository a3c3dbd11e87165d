"""Messages and clock for enforcement unit tests, built from real contracts and real bitmaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyroaring import BitMap

from services.enforcement.app import build_core
from services.enforcement.coordinator import Coordinator
from services.enforcement.tracking import Backoff
from shared.contracts.bitmaps import chunk_bitmap, decode_bitmap, encode_bitmap, scope_digest, set_digest
from shared.contracts.directives import DirectiveScope
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, ImpactAssessed
from shared.contracts.serving import AgentHeartbeat, CommandApplied, CommandFailed, RestrictCommand

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SETS = {"fable-5": BitMap(range(0, 500)), "mythos-5": BitMap(range(250, 260))}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def core(**overrides) -> Coordinator:
    return build_core(Backoff(base_s=1, cap_s=8), ids_per_chunk=overrides.pop("ids_per_chunk", 100), **overrides)


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


def held_digest(commands: list[RestrictCommand]) -> str:
    """What a faithful agent computes from the chunks it received."""
    per_model: dict[str, BitMap] = {}
    for command in commands:
        per_model[command.model] = per_model.get(command.model, BitMap()) | decode_bitmap(command.users)
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
