"""What the enforcement core holds in memory: known clusters, assessments being assembled, rollouts and their sets
(pure). One instance is shared by every part of the core; the store saves and reloads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pyroaring import BitMap

from services.enforcement.assembly import Assembly
from services.enforcement.rollout import Rollout
from shared.contracts.impact import AssessmentKey
from shared.contracts.serving import HeldDirective


class KnownCluster(BaseModel):
    """A serving cluster as its last heartbeat described it."""

    model_config = ConfigDict(extra="forbid")

    cluster_id: str
    region: str = ""
    models: list[str]
    held: dict[str, HeldDirective] = Field(
        default_factory=dict, description="Directive id -> revision and digest the agent reported holding."
    )
    offsets: dict[int, int] = Field(
        default_factory=dict, description="Commands partition -> next offset the agent reported having applied."
    )
    replicas: list[str] = Field(
        default_factory=list,
        description="Replicas of the cluster's agent heard from and not lapsed since ('' is a single agent).",
    )


@dataclass
class EnforcementState:
    """Clusters, assessments being assembled, rollouts and each restrict rollout's sets per model."""

    clusters: dict[str, KnownCluster] = field(default_factory=dict)
    assemblies: dict[AssessmentKey, Assembly] = field(default_factory=dict)
    rollouts: dict[AssessmentKey, Rollout] = field(default_factory=dict)
    sets: dict[AssessmentKey, dict[str, BitMap]] = field(default_factory=dict)
    # (cluster, replica) -> when its last heartbeat was taken in; in memory only: after a restart every known
    # replica is given a full lapse bound from the moment it is first looked at (see replicas.py).
    heard: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def active(self, action: str) -> list[Rollout]:
        return [r for r in self.rollouts.values() if r.active and r.action == action]

    def of_directive(self, directive_id: str) -> list[Rollout]:
        return [r for r in self.rollouts.values() if r.directive_id == directive_id]

    def superseded(self, directive_id: str, revision: int) -> bool:
        return any(r.revision > revision for r in self.of_directive(directive_id))
