"""Turns assessments and lifts into rollouts and per-cluster commands (pure): assembles an assessment, starts its
rollout on every cluster serving its models (with any deltas that came early), retires what it supersedes."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.enforcement.assembly import Assembly
from services.enforcement.cluster_commands import expected_digest, served_scope
from services.enforcement.command_sender import CommandSender
from services.enforcement.deltas import Deltas
from services.enforcement.outcome import Outcome
from services.enforcement.rollout import Rollout
from services.enforcement.state import EnforcementState, KnownCluster
from services.enforcement.status_events import record_change
from services.enforcement.tracking import ClusterTrack
from shared.contracts.bitmaps import EMPTY_SCOPE_DIGEST, decode_bitmap
from shared.contracts.impact import AffectedSetChunk, AssessmentKey, ImpactAssessed


class Targeting:
    """The impact side of the core: which clusters must hold each directive revision, and what."""

    def __init__(
        self, state: EnforcementState, sender: CommandSender, deltas: Deltas, hold_until: datetime | None = None
    ) -> None:
        self.state = state
        self.sender = sender
        self.deltas = deltas
        self.hold_until = hold_until  # heartbeat grace: complete assessments wait until then

    def on_assessed(self, message: ImpactAssessed, now: datetime) -> Outcome:
        out, key = Outcome(), AssessmentKey.of(message)
        if key in self.state.rollouts or self.state.superseded(message.directive_id, message.revision):
            out.notes.append(f"assessment {key} already enforced or superseded: ignored")
            return out
        assembly = self.state.assemblies.get(key) or Assembly()
        if assembly.assessment is None:
            assembly.add_assessment(message)
            out.parts.append(message)
        self.state.assemblies[key] = assembly
        self._try_start(key, now, out)
        return out

    def on_chunk(self, message: AffectedSetChunk, now: datetime) -> Outcome:
        out, key = Outcome(), AssessmentKey.of(message)
        if message.part != "whole":  # an amendment's difference: clusters are sent the whole set
            return out
        if key in self.state.rollouts or self.state.superseded(message.directive_id, message.revision):
            return out
        assembly = self.state.assemblies.get(key) or Assembly()
        if message.chunk not in assembly.chunks:
            assembly.add_chunk(message)  # raises on a bad chunk before anything is kept
            out.parts.append(message)
        self.state.assemblies[key] = assembly
        self._try_start(key, now, out)
        return out

    def start_waiting(self, now: datetime, out: Outcome) -> None:
        """Start the complete assessments that waited for the heartbeat grace to end."""
        for key in [k for k, a in self.state.assemblies.items() if a.complete]:
            self._try_start(key, now, out)

    def add_restrict_target(
        self, rollout: Rollout, cluster: KnownCluster, due_at: datetime, now: datetime, out: Outcome
    ) -> None:
        """Send the rollout to a cluster serving some of its models, unless it is a target already."""
        models = served_scope(cluster.models, rollout.scope)
        if not models or cluster.cluster_id in rollout.clusters:
            return
        track = ClusterTrack(
            cluster_id=cluster.cluster_id,
            models=models,
            due_at=due_at,
            expected_digest=expected_digest(models, rollout.model_digests),
        )
        rollout.clusters[cluster.cluster_id] = track
        self.sender.send(rollout, track, now, rollout.cause, out)

    def _try_start(self, key: AssessmentKey, now: datetime, out: Outcome) -> None:
        assembly = self.state.assemblies.get(key)
        if assembly is None or not assembly.complete or (self.hold_until and now < self.hold_until):
            return
        assessment = assembly.assessment
        assert assessment is not None
        del self.state.assemblies[key]
        out.assembled.add(key)
        rollout = Rollout(
            directive_id=assessment.directive_id,
            revision=assessment.revision,
            action=assessment.action,
            scope=assessment.scope,
            model_digests=dict(assessment.model_digests),
            cause=assessment.event_id,
            caused_by=assessment.caused_by,
            deadline=assessment.occurred_at + timedelta(seconds=assessment.scope.enforcement_deadline_s),
        )
        self.state.rollouts[key] = rollout
        out.rollouts.add(key)
        if rollout.action == "restrict":
            self._start_restrict(rollout, assembly, now, out)
        else:
            self._start_lift(rollout, now, out)
        if not rollout.clusters:
            out.notes.append(f"no known cluster serves {rollout.scope.models}: {key} enforced with no clusters")
        record_change(rollout, now, rollout.cause, out)

    def _start_restrict(self, rollout: Rollout, assembly: Assembly, now: datetime, out: Outcome) -> None:
        self.state.sets[rollout.key] = assembly.sets()
        out.sets.add(rollout.key)
        for delta in sorted(assembly.deltas, key=lambda d: d.seq):
            if delta.seq > rollout.delta_seq.get(delta.model, 0) and delta.model in rollout.scope.models:
                self.deltas.apply(rollout, delta, decode_bitmap(delta.added), decode_bitmap(delta.removed))
        for older in self.state.of_directive(rollout.directive_id):
            if older.revision < rollout.revision:
                self._retire(older, out)
        for cluster in sorted(self.state.clusters.values(), key=lambda c: c.cluster_id):
            self.add_restrict_target(rollout, cluster, rollout.deadline, now, out)

    def _start_lift(self, rollout: Rollout, now: datetime, out: Outcome) -> None:
        targets: set[str] = set()
        for restrict in self.state.of_directive(rollout.directive_id):
            if restrict.action == "restrict" and restrict.revision <= rollout.revision:
                targets |= set(restrict.clusters)
                self._retire(restrict, out)
        targets |= {c.cluster_id for c in self.state.clusters.values() if served_scope(c.models, rollout.scope)}
        for cluster_id in sorted(targets):
            track = ClusterTrack(
                cluster_id=cluster_id, models=[], expected_digest=EMPTY_SCOPE_DIGEST, due_at=rollout.deadline
            )
            rollout.clusters[cluster_id] = track
            self.sender.send(rollout, track, now, rollout.cause, out)

    def _retire(self, rollout: Rollout, out: Outcome) -> None:
        """A superseded or lifted rollout is no longer sent; its sets are no longer needed."""
        rollout.active = False
        out.rollouts.add(rollout.key)
        if self.state.sets.pop(rollout.key, None) is not None:
            out.sets.add(rollout.key)
