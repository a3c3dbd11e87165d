"""The enforcement core's entry points (pure): each inbound message and each tick goes to the part whose rule it is.
Every handler takes the message and the time and returns an Outcome; nothing here touches Kafka, a clock or a disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyroaring import BitMap

from services.enforcement.acknowledgements import Acknowledgements
from services.enforcement.assembly import Assembly
from services.enforcement.deadlines import Deadlines
from services.enforcement.deltas import Deltas
from services.enforcement.outcome import Outcome
from services.enforcement.rollout import Rollout
from services.enforcement.state import EnforcementState, KnownCluster
from services.enforcement.targeting import Targeting
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, AssessmentKey, ImpactAssessed
from shared.contracts.serving import AgentHeartbeat, CommandApplied, CommandFailed


@dataclass
class Coordinator:
    """The core's parts over one state: assessments to targeting, deltas to deltas, agents' messages to
    acknowledgements, time to deadlines. The store and the metrics read the state through it."""

    state: EnforcementState
    targeting: Targeting
    deltas: Deltas
    acks: Acknowledgements
    deadlines: Deadlines

    def on_assessed(self, message: ImpactAssessed, now: datetime) -> Outcome:
        return self.targeting.on_assessed(message, now)

    def on_chunk(self, message: AffectedSetChunk, now: datetime) -> Outcome:
        return self.targeting.on_chunk(message, now)

    def on_delta(self, message: AffectedSetDelta, now: datetime) -> Outcome:
        return self.deltas.on_delta(message, now)

    def on_heartbeat(self, message: AgentHeartbeat, now: datetime) -> Outcome:
        return self.acks.on_heartbeat(message, now)

    def on_applied(self, message: CommandApplied, now: datetime) -> Outcome:
        return self.acks.on_applied(message, now)

    def on_failed(self, message: CommandFailed, now: datetime) -> Outcome:
        return self.acks.on_failed(message, now)

    def tick(self, now: datetime) -> Outcome:
        return self.deadlines.tick(now)

    def recover(self, now: datetime) -> Outcome:
        return self.deadlines.recover(now)

    @property
    def hold_until(self) -> datetime | None:
        """Heartbeat grace: complete assessments wait until then."""
        return self.targeting.hold_until

    @hold_until.setter
    def hold_until(self, until: datetime | None) -> None:
        self.targeting.hold_until = until

    @property
    def clusters(self) -> dict[str, KnownCluster]:
        return self.state.clusters

    @property
    def assemblies(self) -> dict[AssessmentKey, Assembly]:
        return self.state.assemblies

    @property
    def rollouts(self) -> dict[AssessmentKey, Rollout]:
        return self.state.rollouts

    @property
    def sets(self) -> dict[AssessmentKey, dict[str, BitMap]]:
        return self.state.sets
