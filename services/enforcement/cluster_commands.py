"""What each cluster is sent: its share of an affected set, re-chunked, and its expected digest (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

from pyroaring import BitMap

from shared.contracts.bitmaps import chunk_bitmap, encode_bitmap, scope_digest
from shared.contracts.directives import CausedBy, DirectiveScope
from shared.contracts.envelope import envelope
from shared.contracts.impact import AffectedSetDelta
from shared.contracts.serving import AgentHeartbeat, ClusterSynced, DeltaCommand, LiftCommand, RestrictCommand

PRODUCER = "enforcement"


def served_scope(cluster_models: list[str], scope: DirectiveScope) -> list[str]:
    """The models of the scope a cluster serves, in name order."""
    return sorted(set(cluster_models) & set(scope.models))


def expected_digest(models: list[str], model_digests: Mapping[str, str]) -> str:
    """The scope digest a cluster holds once it applied the sets of these models."""
    return scope_digest({m: model_digests[m] for m in models})


def split(users: BitMap, ids_per_chunk: int) -> list[BitMap]:
    """Consecutive chunks of at most ids_per_chunk ids, cut by id range (see chunk_bitmap)."""
    return chunk_bitmap(users, ids_per_chunk)


def encoded_chunks(users: BitMap, ids_per_chunk: int, max_chars: int) -> list[str]:
    """One model's set as the base64 chunks RestrictCommands carry (computed once, sent to every cluster).

    At most ids_per_chunk ids and max_chars characters per chunk: dense sets travel in few large
    messages, sparse ones are halved until each fits under the topic's message size.
    """
    return [text for part in split(users, ids_per_chunk) for text in _fit(part, max_chars)]


def _fit(part: BitMap, max_chars: int) -> list[str]:
    text = encode_bitmap(part)
    if len(text) <= max_chars or len(part) <= 1:
        return [text]
    first, second = split(part, (len(part) + 1) // 2)
    return _fit(first, max_chars) + _fit(second, max_chars)


def restrict_commands(
    cluster_id: str,
    directive_id: str,
    revision: int,
    scope: DirectiveScope,
    chunks: Mapping[str, list[str]],
    models: list[str],
    expected: str,
    *,
    attempt: int,
    now: datetime,
    cause: str | None,
    caused_by: CausedBy | None = None,
) -> list[RestrictCommand]:
    """The cluster's chunks: every served model of the scope at least one chunk, numbered across models; each
    carries who caused the revision (the same small object, serialised with each chunk)."""
    parts = [(m, users) for m in models for users in chunks[m]]
    return [
        RestrictCommand(
            **envelope(
                PRODUCER,
                event_id=f"cmd:{cluster_id}:{directive_id}:{revision}:restrict:{index}:{attempt}",
                occurred_at=now,
                correlation_id=directive_id,
                causation_id=cause,
            ),
            cluster_id=cluster_id,
            directive_id=directive_id,
            revision=revision,
            model=model,
            chunk=index,
            chunks=len(parts),
            users=users,
            expected_digest=expected,
            effective_from=scope.effective_from,
            expires_at=scope.expires_at,
            on_stale=scope.on_stale,
            caused_by=caused_by,
        )
        for index, (model, users) in enumerate(parts)
    ]


def lift_command(
    cluster_id: str,
    directive_id: str,
    revision: int,
    *,
    attempt: int,
    now: datetime,
    cause: str | None,
    caused_by: CausedBy | None = None,
) -> LiftCommand:
    """Tell a cluster to drop the directive."""
    return LiftCommand(
        **envelope(
            PRODUCER,
            event_id=f"cmd:{cluster_id}:{directive_id}:{revision}:lift:{attempt}",
            occurred_at=now,
            correlation_id=directive_id,
            causation_id=cause,
        ),
        cluster_id=cluster_id,
        directive_id=directive_id,
        revision=revision,
        caused_by=caused_by,
    )


def delta_command(cluster_id: str, delta: AffectedSetDelta, now: datetime) -> DeltaCommand:
    """Forward a registry-driven change of one model's set to a cluster serving it."""
    return DeltaCommand(
        **envelope(
            PRODUCER,
            event_id=f"cmd:{cluster_id}:{delta.directive_id}:{delta.revision}:delta:{delta.model}:{delta.seq}",
            occurred_at=now,
            correlation_id=delta.directive_id,
            causation_id=delta.event_id,
        ),
        cluster_id=cluster_id,
        directive_id=delta.directive_id,
        revision=delta.revision,
        seq=delta.seq,
        model=delta.model,
        added=delta.added,
        removed=delta.removed,
        caused_by=delta.caused_by,
    )


def synced_marker(beat: AgentHeartbeat, now: datetime) -> ClusterSynced:
    """Tell a not-ready cluster that every restriction in force for it was sent before this message."""
    # Deterministic per heartbeat; an unusually long heartbeat id is hashed so the marker's id stays in bounds.
    beat_id = beat.event_id if len(beat.event_id) <= 128 else hashlib.sha256(beat.event_id.encode()).hexdigest()
    return ClusterSynced(
        **envelope(
            PRODUCER, event_id=f"synced:{beat.cluster_id}:{beat_id}", occurred_at=now, causation_id=beat.event_id
        ),
        cluster_id=beat.cluster_id,
        heartbeat_event_id=beat.event_id,
    )
