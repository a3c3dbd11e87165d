"""What each cluster is sent: its share of an affected set, re-chunked, and its expected digest (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pyroaring import BitMap

from shared.contracts.bitmaps import chunk_bitmap, encode_bitmap, scope_digest
from shared.contracts.directives import DirectiveScope
from shared.contracts.impact import AffectedSetDelta
from shared.contracts.serving import DeltaCommand, LiftCommand, RestrictCommand

PRODUCER = "enforcement"
NOTHING_HELD = scope_digest({})


def served_scope(cluster_models: list[str], scope: DirectiveScope) -> list[str]:
    """The models of the scope a cluster serves, in name order."""
    return sorted(set(cluster_models) & set(scope.models))


def expected_digest(models: list[str], model_digests: Mapping[str, str]) -> str:
    """The scope digest a cluster holds once it applied the sets of these models."""
    return scope_digest({m: model_digests[m] for m in models})


def restrict_commands(cluster_id: str, directive_id: str, revision: int, scope: DirectiveScope,
                      sets: Mapping[str, BitMap], models: list[str], expected: str, *, attempt: int,
                      now: datetime, cause: str | None, ids_per_chunk: int) -> list[RestrictCommand]:
    """The cluster's chunks: every served model of the scope at least one chunk, numbered across models."""
    parts = [(m, part) for m in models for part in chunk_bitmap(sets.get(m, BitMap()), ids_per_chunk)]
    return [
        RestrictCommand(
            event_id=f"cmd:{cluster_id}:{directive_id}:{revision}:restrict:{index}:{attempt}",
            occurred_at=now, producer=PRODUCER, correlation_id=directive_id, causation_id=cause,
            cluster_id=cluster_id, directive_id=directive_id, revision=revision, model=model, chunk=index,
            chunks=len(parts), users=encode_bitmap(part), expected_digest=expected,
            effective_from=scope.effective_from, expires_at=scope.expires_at,
        )
        for index, (model, part) in enumerate(parts)
    ]


def lift_command(cluster_id: str, directive_id: str, revision: int, *, attempt: int, now: datetime,
                 cause: str | None) -> LiftCommand:
    """Tell a cluster to drop the directive."""
    return LiftCommand(event_id=f"cmd:{cluster_id}:{directive_id}:{revision}:lift:{attempt}", occurred_at=now,
                       producer=PRODUCER, correlation_id=directive_id, causation_id=cause,
                       cluster_id=cluster_id, directive_id=directive_id, revision=revision)


def delta_command(cluster_id: str, delta: AffectedSetDelta, now: datetime) -> DeltaCommand:
    """Forward a registry-driven change of one model's set to a cluster serving it."""
    return DeltaCommand(
        event_id=f"cmd:{cluster_id}:{delta.directive_id}:{delta.revision}:delta:{delta.model}:{delta.seq}",
        occurred_at=now, producer=PRODUCER, correlation_id=delta.directive_id, causation_id=delta.event_id,
        cluster_id=cluster_id, directive_id=delta.directive_id, revision=delta.revision, seq=delta.seq,
        model=delta.model, added=delta.added, removed=delta.removed,
    )
