"""What each cluster is sent: references to the set copies of the models it serves, its expected digest, lifts,
deltas and sync markers (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from shared.contracts.bitmaps import scope_digest
from shared.contracts.directives import CausedBy, DirectiveScope
from shared.contracts.envelope import envelope
from shared.contracts.impact import AffectedSetDelta, AssessmentKey
from shared.contracts.serving import AgentHeartbeat, ClusterSynced, DeltaCommand, LiftCommand, RestrictCommand
from shared.contracts.set_copies import SetReference

PRODUCER = "enforcement"


def served_scope(cluster_models: list[str], scope: DirectiveScope) -> list[str]:
    """The models of the scope a cluster serves, in name order."""
    return sorted(set(cluster_models) & set(scope.models))


def expected_digest(models: list[str], model_digests: Mapping[str, str]) -> str:
    """The scope digest a cluster holds once it applied the sets of these models."""
    return scope_digest({m: model_digests[m] for m in models})


@dataclass(frozen=True)
class RestrictDraft:
    """One send of a restriction to one cluster before its sets are placed: the service publishes each model's set
    once per version on serving.sets.v1 (SetCopies) and `command()` turns the draft into the RestrictCommand that
    references them. Drafts are not stored: after a restart they are drawn again from the sets and tracks."""

    type: ClassVar[str] = "RestrictCommand"
    cluster_id: str
    directive_id: str
    revision: int
    key: AssessmentKey
    scope: DirectiveScope
    versions: tuple[tuple[str, int], ...]  # (model, set version) per served model, in name order
    expected_digest: str
    attempt: int
    now: datetime
    cause: str | None
    caused_by: CausedBy | None = None

    @property
    def event_id(self) -> str:
        return f"cmd:{self.cluster_id}:{self.directive_id}:{self.revision}:restrict:0:{self.attempt}"

    def command(self, refs: Mapping[str, SetReference]) -> RestrictCommand:
        """The command, given where each served model's set copy sits."""
        return RestrictCommand(
            **envelope(
                PRODUCER,
                event_id=self.event_id,
                occurred_at=self.now,
                correlation_id=self.directive_id,
                causation_id=self.cause,
            ),
            cluster_id=self.cluster_id,
            directive_id=self.directive_id,
            revision=self.revision,
            chunk=0,
            chunks=1,
            sets=[refs[model] for model, _ in self.versions],
            expected_digest=self.expected_digest,
            effective_from=self.scope.effective_from,
            expires_at=self.scope.expires_at,
            on_stale=self.scope.on_stale,
            caused_by=self.caused_by,
        )


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
