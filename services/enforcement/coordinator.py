"""The enforcement core: targets clusters, tracks their acks, decides re-sends and verdicts (pure).

Every handler takes the message and the current time and returns an Outcome: the commands and status
events to publish and what changed (for the store). Nothing here touches Kafka, a clock or a disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pyroaring import BitMap

from services.enforcement.assembly import Assembly
from services.enforcement.cluster_commands import (
    delta_command,
    encoded_chunks,
    expected_digest,
    lift_command,
    restrict_commands,
    served_scope,
    synced_marker,
)
from services.enforcement.rollout import Rollout
from services.enforcement.tracking import (
    Backoff,
    ClusterTrack,
    acknowledge,
    drift,
    expect,
    fail,
    mark_sent,
    resend_due,
    schedule_next,
)
from shared.contracts.bitmaps import EMPTY_SCOPE_DIGEST, apply_delta_in_place, decode_bitmap
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, AssessmentKey, ImpactAssessed
from shared.contracts.serving import REFUSED, AgentHeartbeat, CommandApplied, CommandFailed, HeldDirective


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


@dataclass(frozen=True)
class SetDelta:
    """A delta applied to one model's set of a rollout: what the store appends to that set's log."""

    key: AssessmentKey
    model: str
    seq: int
    added: BitMap
    removed: BitMap


@dataclass
class Outcome:
    """What one message or tick produced: messages to publish and state to persist."""

    commands: list[Any] = field(default_factory=list)
    markers: list[Any] = field(default_factory=list)  # ClusterSynced: published once the commands are acknowledged
    events: list[Any] = field(default_factory=list)
    rollouts: set[AssessmentKey] = field(default_factory=set)
    sets: set[AssessmentKey] = field(default_factory=set)  # every model's set rewritten
    deltas: list[SetDelta] = field(default_factory=list)  # one model's set changed by a delta (logged, not rewritten)
    clusters: set[str] = field(default_factory=set)
    parts: list[Any] = field(default_factory=list)  # assessment parts to keep until complete
    assembled: set[AssessmentKey] = field(default_factory=set)  # assemblies done (their parts can go)
    notes: list[str] = field(default_factory=list)  # warnings worth a log line


@dataclass
class Coordinator:
    """Clusters, assessments being assembled and rollouts, with the rules that move them."""

    backoff: Backoff = field(default_factory=Backoff)
    ids_per_chunk: int = 200_000
    chunk_chars: int = 1_500_000  # base64 characters per RestrictCommand at most
    hold_until: datetime | None = None  # heartbeat grace: complete assessments wait until then
    clusters: dict[str, KnownCluster] = field(default_factory=dict)
    assemblies: dict[AssessmentKey, Assembly] = field(default_factory=dict)
    rollouts: dict[AssessmentKey, Rollout] = field(default_factory=dict)
    sets: dict[AssessmentKey, dict[str, BitMap]] = field(default_factory=dict)
    encoded: dict[AssessmentKey, dict[str, list[str]]] = field(default_factory=dict)  # cache of sets as wire chunks

    # -- impact ------------------------------------------------------------------------------------

    def on_assessed(self, message: ImpactAssessed, now: datetime) -> Outcome:
        out, key = Outcome(), AssessmentKey.of(message)
        if key in self.rollouts or self._superseded(message.directive_id, message.revision):
            out.notes.append(f"assessment {key} already enforced or superseded: ignored")
            return out
        assembly = self.assemblies.get(key) or Assembly()
        if assembly.assessment is None:
            assembly.add_assessment(message)
            out.parts.append(message)
        self.assemblies[key] = assembly
        self._try_start(key, now, out)
        return out

    def on_chunk(self, message: AffectedSetChunk, now: datetime) -> Outcome:
        out, key = Outcome(), AssessmentKey.of(message)
        if message.part != "whole":  # an amendment's difference: clusters are sent the whole set
            return out
        if key in self.rollouts or self._superseded(message.directive_id, message.revision):
            return out
        assembly = self.assemblies.get(key) or Assembly()
        if message.chunk not in assembly.chunks:
            assembly.add_chunk(message)  # raises on a bad chunk before anything is kept
            out.parts.append(message)
        self.assemblies[key] = assembly
        self._try_start(key, now, out)
        return out

    def on_delta(self, message: AffectedSetDelta, now: datetime) -> Outcome:
        out, key = Outcome(), (message.directive_id, message.revision, "restrict")
        added, removed = decode_bitmap(message.added), decode_bitmap(message.removed)
        rollout = self.rollouts.get(key)
        if rollout is None:
            if key not in self.assemblies:
                out.notes.append(f"delta for unknown assessment {key}: ignored")
                return out
            self.assemblies[key].deltas.append(message)
            out.parts.append(message)
            return out
        if not rollout.active or message.seq <= rollout.delta_seq.get(message.model, 0):
            return out
        if message.model not in rollout.scope.models:
            raise ValueError(f"model: {message.model} is not in the scope of {key}")
        self._apply_delta(rollout, message, added, removed)
        out.deltas.append(SetDelta(key, message.model, message.seq, added, removed))
        # Every cluster holding the directive gets every delta: impact numbers seq across the revision's
        # models, so an agent must see each seq to apply them in order without waiting on a gap. A cluster
        # that does not serve the model only advances its seq; its expected digest is unchanged.
        for track in rollout.clusters.values():
            out.commands.append(delta_command(track.cluster_id, message, now))
            if message.model in track.models:
                expect(track, expected_digest(track.models, rollout.model_digests), self._due(rollout, now))
                mark_sent(track, now)
        self._changed(rollout, now, message.event_id, out)
        return out

    # -- agents ------------------------------------------------------------------------------------

    def on_heartbeat(self, message: AgentHeartbeat, now: datetime) -> Outcome:
        """Note the cluster, send it what it lacks; a not-ready one also gets a ClusterSynced after that."""
        out = Outcome()
        known = KnownCluster(
            cluster_id=message.cluster_id,
            region=message.region,
            models=sorted(message.models),
            held=dict(message.held),
            offsets=dict(message.offsets),
        )
        if self.clusters.get(message.cluster_id) != known:
            self.clusters[message.cluster_id] = known
            out.clusters.add(message.cluster_id)
        for rollout in self._active("restrict"):
            self._catch_up(rollout, known, message, now, out)
        if not message.ready:  # the agent waits to hear that everything in force for it was sent
            out.markers.append(synced_marker(message, now))
        return out

    def on_applied(self, message: CommandApplied, now: datetime) -> Outcome:
        out = Outcome()
        action = "lift" if message.action == "lift" else "restrict"
        track, rollout = self._track_for(message.directive_id, message.revision, action, message.cluster_id, out)
        if track is not None and track.applied and action == "restrict" and message.digest != track.expected_digest:
            self._drifted(rollout, track, message.digest, now, message.event_id, out)  # it held the right one
        elif track is not None and acknowledge(track, message.digest, now, self.backoff):
            self._changed(rollout, now, message.event_id, out)
        return out

    def on_failed(self, message: CommandFailed, now: datetime) -> Outcome:
        out = Outcome()
        if message.reason.startswith(REFUSED):
            # The agent refused a command it was sent that enforcement may never have signed (forged, replayed,
            # expired): on record, nothing to re-send for it; what the cluster holds is checked by heartbeats.
            out.notes.append(
                f"cluster {message.cluster_id} refused a command for {message.directive_id} "
                f"revision {message.revision}: {message.reason}"
            )
            return out
        lift = self.rollouts.get((message.directive_id, message.revision, "lift"))
        action = "lift" if lift is not None and lift.active else "restrict"
        track, rollout = self._track_for(message.directive_id, message.revision, action, message.cluster_id, out)
        if track is not None:
            fail(track, message.reason, now, self.backoff)
            self._changed(rollout, now, message.event_id, out)
        return out

    # -- time --------------------------------------------------------------------------------------

    def recover(self, now: datetime) -> Outcome:
        """After a restart, send every unapplied restriction again.

        RestrictCommands are a function of the persisted sets and tracks, so they are not kept in the
        outbox (a large set would be written to disk once per cluster); a crash between saving the state
        and publishing them is covered by this re-send. Agents re-confirm what they already hold.
        """
        out = Outcome()
        for rollout in self._active("restrict"):
            for track in [t for t in rollout.clusters.values() if not t.applied]:
                self._send(rollout, track, now, rollout.cause, out)
                out.rollouts.add(rollout.key)
        return out

    def tick(self, now: datetime) -> Outcome:
        """Start assessments whose grace ended, mark missed deadlines overdue, re-send what is due."""
        out = Outcome()
        for key in [k for k, a in self.assemblies.items() if a.complete]:
            self._try_start(key, now, out)
        for rollout in [r for r in self.rollouts.values() if r.active]:
            resent = [t for t in rollout.clusters.values() if resend_due(t, now)]
            for track in resent:
                self._send(rollout, track, now, rollout.cause, out)
                schedule_next(track, now, self.backoff)
            overdue = rollout.overdue()
            if overdue and overdue != rollout.overdue_reported:
                rollout.overdue_reported = overdue
                out.events.append(rollout.overdue_event(now, overdue))
                out.rollouts.add(rollout.key)  # the event counter behind deterministic ids must persist
            if resent:
                self._changed(rollout, now, rollout.cause, out)
        return out

    # -- rules -------------------------------------------------------------------------------------

    def _try_start(self, key: AssessmentKey, now: datetime, out: Outcome) -> None:
        assembly = self.assemblies.get(key)
        if assembly is None or not assembly.complete or (self.hold_until and now < self.hold_until):
            return
        assessment = assembly.assessment
        assert assessment is not None
        del self.assemblies[key]
        out.assembled.add(key)
        rollout = Rollout(
            directive_id=assessment.directive_id,
            revision=assessment.revision,
            action=assessment.action,
            scope=assessment.scope,
            model_digests=dict(assessment.model_digests),
            cause=assessment.event_id,
            deadline=assessment.occurred_at + timedelta(seconds=assessment.scope.enforcement_deadline_s),
        )
        self.rollouts[key] = rollout
        out.rollouts.add(key)
        if rollout.action == "restrict":
            self._start_restrict(rollout, assembly, now, out)
        else:
            self._start_lift(rollout, now, out)
        if not rollout.clusters:
            out.notes.append(f"no known cluster serves {rollout.scope.models}: {key} enforced with no clusters")
        self._changed(rollout, now, rollout.cause, out)

    def _start_restrict(self, rollout: Rollout, assembly: Assembly, now: datetime, out: Outcome) -> None:
        self.sets[rollout.key] = assembly.sets()
        out.sets.add(rollout.key)
        for delta in sorted(assembly.deltas, key=lambda d: d.seq):
            if delta.seq > rollout.delta_seq.get(delta.model, 0) and delta.model in rollout.scope.models:
                self._apply_delta(rollout, delta, decode_bitmap(delta.added), decode_bitmap(delta.removed))
        for older in self._of_directive(rollout.directive_id):
            if older.revision < rollout.revision:
                self._retire(older, out)
        for cluster in sorted(self.clusters.values(), key=lambda c: c.cluster_id):
            self._add_restrict_target(rollout, cluster, rollout.deadline, now, out)

    def _start_lift(self, rollout: Rollout, now: datetime, out: Outcome) -> None:
        targets: set[str] = set()
        for restrict in self._of_directive(rollout.directive_id):
            if restrict.action == "restrict" and restrict.revision <= rollout.revision:
                targets |= set(restrict.clusters)
                self._retire(restrict, out)
        targets |= {c.cluster_id for c in self.clusters.values() if served_scope(c.models, rollout.scope)}
        for cluster_id in sorted(targets):
            track = ClusterTrack(
                cluster_id=cluster_id, models=[], expected_digest=EMPTY_SCOPE_DIGEST, due_at=rollout.deadline
            )
            rollout.clusters[cluster_id] = track
            self._send(rollout, track, now, rollout.cause, out)

    def _add_restrict_target(
        self, rollout: Rollout, cluster: KnownCluster, due_at: datetime, now: datetime, out: Outcome
    ) -> None:
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
        self._send(rollout, track, now, rollout.cause, out)

    def _catch_up(
        self, rollout: Rollout, cluster: KnownCluster, beat: AgentHeartbeat, now: datetime, out: Outcome
    ) -> None:
        """A cluster heard of after the directive went out gets it; a held matching digest counts as an ack."""
        track = rollout.clusters.get(cluster.cluster_id)
        if track is None:
            before = len(out.commands)
            self._add_restrict_target(rollout, cluster, self._due(rollout, now), now, out)
            if len(out.commands) > before:
                self._changed(rollout, now, beat.event_id, out)
            return
        held = beat.held.get(rollout.directive_id)
        holds_it = held is not None and held.revision == rollout.revision and held.digest == track.expected_digest
        newer = held is not None and held.revision > rollout.revision  # this rollout is being superseded
        if not track.applied and holds_it:
            acknowledge(track, held.digest, now, self.backoff)
            self._changed(rollout, now, beat.event_id, out)
        elif track.applied and not beat.ready and not holds_it and track.models:
            # An agent that lost its state (a wiped disk under a known cluster id) must get the
            # restriction again before the ClusterSynced that follows lets it answer checks.
            expect(track, track.expected_digest, self._due(rollout, now))
            self._send(rollout, track, now, beat.event_id, out)
            self._changed(rollout, now, beat.event_id, out)
        elif track.applied and not holds_it and track.models and _beat_after_ack(beat, track) and not newer:
            # Drift: it acknowledged this digest, and a heartbeat sent since shows something else.
            holding = held.digest if held is not None and held.revision == rollout.revision else None
            self._drifted(rollout, track, holding, now, beat.event_id, out)

    def _drifted(
        self, rollout: Rollout, track: ClusterTrack, holding: str | None, now: datetime, cause: str, out: Outcome
    ) -> None:
        """A cluster that held the right state holds another (a forged command, lost state, a bug): on record,
        and re-sent now rather than at a deadline."""
        drift(track, holding, self._due(rollout, now))
        out.notes.append(f"cluster {track.cluster_id} drifted from {rollout.key}: {track.reason}")
        self._send(rollout, track, now, cause, out)
        self._changed(rollout, now, cause, out)

    def _send(self, rollout: Rollout, track: ClusterTrack, now: datetime, cause: str | None, out: Outcome) -> None:
        mark_sent(track, now)
        if rollout.action == "lift":
            out.commands.append(
                lift_command(
                    track.cluster_id,
                    rollout.directive_id,
                    rollout.revision,
                    attempt=track.attempts,
                    now=now,
                    cause=cause,
                )
            )
            return
        out.commands.extend(
            restrict_commands(
                track.cluster_id,
                rollout.directive_id,
                rollout.revision,
                rollout.scope,
                self._chunks(rollout.key, track.models),
                track.models,
                track.expected_digest,
                attempt=track.attempts,
                now=now,
                cause=cause,
            )
        )

    def _chunks(self, key: AssessmentKey, models: list[str]) -> dict[str, list[str]]:
        """The models' sets as wire chunks, encoded once and shared by every cluster and re-send."""
        cache = self.encoded.setdefault(key, {})
        for model in models:
            if model not in cache:
                cache[model] = encoded_chunks(self.sets[key].get(model, BitMap()), self.ids_per_chunk, self.chunk_chars)
        return cache

    def _retire(self, rollout: Rollout, out: Outcome) -> None:
        """A superseded or lifted rollout is no longer sent; its sets are no longer needed."""
        rollout.active = False
        out.rollouts.add(rollout.key)
        self.encoded.pop(rollout.key, None)
        if self.sets.pop(rollout.key, None) is not None:
            out.sets.add(rollout.key)

    def _apply_delta(self, rollout: Rollout, delta: AffectedSetDelta, added: BitMap, removed: BitMap) -> None:
        # In place: a million-user set is not copied twice per delta.
        apply_delta_in_place(self.sets[rollout.key].setdefault(delta.model, BitMap()), added, removed)
        self.encoded.get(rollout.key, {}).pop(delta.model, None)
        rollout.model_digests[delta.model] = delta.model_digest
        rollout.delta_seq[delta.model] = delta.seq

    def _changed(self, rollout: Rollout, now: datetime, cause: str | None, out: Outcome) -> None:
        """Every state change is published; the verdict once, when every target applied."""
        out.rollouts.add(rollout.key)
        out.events.append(rollout.progressed(now, cause))
        if not rollout.enforced and rollout.all_applied:
            rollout.enforced = True
            out.events.append(rollout.enforced_event(now, cause))

    def _track_for(
        self, directive_id: str, revision: int, action: str, cluster_id: str, out: Outcome
    ) -> tuple[ClusterTrack | None, Rollout | None]:
        rollout = self.rollouts.get(AssessmentKey(directive_id, revision, action))
        if rollout is None or not rollout.active or cluster_id not in rollout.clusters:
            out.notes.append(
                f"ack from {cluster_id} for {directive_id} r{revision} {action} matches no active rollout: ignored"
            )
            return None, None
        return rollout.clusters[cluster_id], rollout

    def _due(self, rollout: Rollout, now: datetime) -> datetime:
        return max(rollout.deadline, now + timedelta(seconds=rollout.scope.enforcement_deadline_s))

    def _active(self, action: str) -> list[Rollout]:
        return [r for r in self.rollouts.values() if r.active and r.action == action]

    def _of_directive(self, directive_id: str) -> list[Rollout]:
        return [r for r in self.rollouts.values() if r.directive_id == directive_id]

    def _superseded(self, directive_id: str, revision: int) -> bool:
        return any(r.revision > revision for r in self._of_directive(directive_id))


def _beat_after_ack(beat: AgentHeartbeat, track: ClusterTrack) -> bool:
    """Whether the agent sent this heartbeat after the ack that made the track applied (an earlier one may
    predate what it applied)."""
    return track.acked_at is not None and beat.occurred_at > track.acked_at
