"""One directive revision and action being enforced across clusters, and the status events it yields (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.enforcement.cluster_commands import PRODUCER
from services.enforcement.tracking import ClusterTrack, progress_of
from shared.contracts.bitmaps import EMPTY_SCOPE_DIGEST, scope_digest
from shared.contracts.directives import CausedBy, DirectiveScope
from shared.contracts.enforcement import DirectiveEnforced, EnforcementOverdue, EnforcementProgressed
from shared.contracts.envelope import envelope
from shared.contracts.impact import Action, AssessmentKey


class Rollout(BaseModel):
    """A directive revision's restrict or lift, with each target cluster's track."""

    model_config = ConfigDict(extra="forbid")

    directive_id: str
    revision: int
    action: Action
    scope: DirectiveScope
    model_digests: dict[str, str]
    deadline: AwareDatetime
    cause: str = Field(description="event_id of the assessment.")
    caused_by: CausedBy | None = Field(None, description="Who caused the revision or lift, from its assessment.")
    clusters: dict[str, ClusterTrack] = Field(default_factory=dict)
    active: bool = True
    enforced: bool = False
    overdue_reported: list[str] = Field(default_factory=list)
    delta_seq: dict[str, int] = Field(default_factory=dict)
    events: int = 0

    @property
    def key(self) -> AssessmentKey:
        return AssessmentKey(self.directive_id, self.revision, self.action)

    @property
    def digest(self) -> str:
        """What every cluster holds once enforced (the impact digest, updated by deltas)."""
        return scope_digest(self.model_digests) if self.action == "restrict" else EMPTY_SCOPE_DIGEST

    @property
    def all_applied(self) -> bool:
        return all(track.applied for track in self.clusters.values())

    def due(self, now: datetime) -> datetime:
        """When a cluster asked now to hold something new must acknowledge it: never before the deadline."""
        return max(self.deadline, now + timedelta(seconds=self.scope.enforcement_deadline_s))

    def overdue(self) -> list[str]:
        return sorted(c for c, track in self.clusters.items() if track.state == "overdue")

    def _envelope(self, name: str, now: datetime, cause: str | None) -> dict:
        self.events += 1
        return {
            **envelope(
                PRODUCER,
                event_id=f"enf:{self.directive_id}:{self.revision}:{self.action}:{name}:{self.events}",
                occurred_at=now,
                correlation_id=self.directive_id,
                causation_id=cause,
            ),
            "directive_id": self.directive_id,
            "revision": self.revision,
            "action": self.action,
        }

    def progressed(self, now: datetime, cause: str | None) -> EnforcementProgressed:
        return EnforcementProgressed(
            **self._envelope("progress", now, cause),
            expected_digest=self.digest,
            deadline=self.deadline,
            clusters={c: progress_of(t) for c, t in sorted(self.clusters.items())},
        )

    def enforced_event(self, now: datetime, cause: str | None) -> DirectiveEnforced:
        return DirectiveEnforced(
            **self._envelope("enforced", now, cause),
            digest=self.digest,
            clusters={c: progress_of(t) for c, t in sorted(self.clusters.items())},
            ack_latency_s={c: t.latency_s() for c, t in sorted(self.clusters.items())},
        )

    def overdue_event(self, now: datetime, overdue: list[str]) -> EnforcementOverdue:
        return EnforcementOverdue(**self._envelope("overdue", now, self.cause), overdue_clusters=overdue)
