"""Takes the agents' acks and heartbeats (pure): notes each cluster and its agent replicas, counts a cluster applied
once every live replica holds the expected digest, sends a late-joining or wiped replica what it lacks, and detects
drift (an applied cluster showing another digest)."""

from __future__ import annotations

from datetime import datetime

from services.enforcement.cluster_commands import synced_marker
from services.enforcement.command_sender import CommandSender
from services.enforcement.outcome import Outcome
from services.enforcement.replicas import Replicas, name
from services.enforcement.rollout import Rollout
from services.enforcement.state import EnforcementState, KnownCluster
from services.enforcement.status_events import record_change
from services.enforcement.targeting import Targeting
from services.enforcement.tracking import Backoff, ClusterTrack, acknowledge, drift, expect, fail, forget
from shared.contracts.impact import AssessmentKey
from shared.contracts.serving import REFUSED, AgentHeartbeat, CommandApplied, CommandFailed


class Acknowledgements:
    """The agents' side of the core: what each cluster says it holds, against what it must hold."""

    def __init__(
        self, state: EnforcementState, targeting: Targeting, sender: CommandSender, backoff: Backoff, replicas: Replicas
    ) -> None:
        self.state = state
        self.targeting = targeting
        self.sender = sender
        self.backoff = backoff
        self.replicas = replicas

    def on_heartbeat(self, message: AgentHeartbeat, now: datetime) -> Outcome:
        """Note the cluster and the replica, send it what it lacks; a not-ready one also gets a ClusterSynced after
        that."""
        out = Outcome()
        prior = self.state.clusters.get(message.cluster_id)
        members = set(prior.replicas) if prior is not None else set()
        if message.replica_id and message.replica_id not in members:
            out.notes.append(f"{name(message.cluster_id, message.replica_id)} joined: counted once it holds")
        known = KnownCluster(
            cluster_id=message.cluster_id,
            region=message.region,
            models=sorted(message.models),
            held=dict(message.held),
            offsets=dict(message.offsets),
            replicas=sorted(members | {message.replica_id}),
        )
        self.replicas.beat(message.cluster_id, message.replica_id, now)
        if prior != known:
            self.state.clusters[message.cluster_id] = known
            out.clusters.add(message.cluster_id)
        for rollout in self.state.active("restrict"):
            self._catch_up(rollout, known, message, now, out)
        if not message.ready:  # the agent waits to hear that everything in force for it was sent
            out.markers.append(synced_marker(message, now))
        return out

    def on_applied(self, message: CommandApplied, now: datetime) -> Outcome:
        out = Outcome()
        action = "lift" if message.action == "lift" else "restrict"
        track, rollout = self._track_for(message.directive_id, message.revision, action, message.cluster_id, out)
        if track is None or not self._counts(message, now, out):
            return out
        replica = message.replica_id
        if track.applied and action == "restrict" and message.digest != track.expected_digest:
            self._drifted(rollout, track, message.digest, now, message.event_id, out, replica)  # it held the right one
            return out
        if message.digest != track.expected_digest:
            out.notes.append(
                f"ack from {name(message.cluster_id, replica)} for {rollout.key} holds digest {message.digest}, "
                f"expected {track.expected_digest}: not counted, re-sent"
            )
        live = self.replicas.live(message.cluster_id, now)
        if acknowledge(track, message.digest, now, self.backoff, replica, live):
            record_change(rollout, now, message.event_id, out)
        return out

    def on_failed(self, message: CommandFailed, now: datetime) -> Outcome:
        out = Outcome()
        if message.reason.startswith(REFUSED):
            # The agent refused a command it was sent that enforcement may never have signed (forged, replayed,
            # expired): on record, nothing to re-send for it; what the cluster holds is checked by heartbeats.
            out.notes.append(
                f"{name(message.cluster_id, message.replica_id)} refused a command for {message.directive_id} "
                f"revision {message.revision}: {message.reason}"
            )
            return out
        lift = self.state.rollouts.get((message.directive_id, message.revision, "lift"))
        action = "lift" if lift is not None and lift.active else "restrict"
        track, rollout = self._track_for(message.directive_id, message.revision, action, message.cluster_id, out)
        if track is not None and self._counts(message, now, out):
            fail(track, message.reason, now, self.backoff)
            record_change(rollout, now, message.event_id, out)
        return out

    def _counts(self, message: CommandApplied | CommandFailed, now: datetime, out: Outcome) -> bool:
        """Whether the ack's replica is one whose heartbeats enforcement takes in (else refused: counts nothing)."""
        if self.replicas.counts(message.cluster_id, message.replica_id, now):
            return True
        out.notes.append(
            f"ack refused: unknown replica {message.replica_id!r} of cluster {message.cluster_id} (no heartbeat "
            f"from it within {self.replicas.lapse.total_seconds():g} s) for {message.directive_id} revision "
            f"{message.revision}: counts nothing"
        )
        return False

    def _catch_up(
        self, rollout: Rollout, cluster: KnownCluster, beat: AgentHeartbeat, now: datetime, out: Outcome
    ) -> None:
        """A cluster heard of after the directive went out gets it; a replica's held matching digest counts as its
        ack; a replica that lost it is sent it again; one that shows another digest after acknowledging drifted."""
        track = rollout.clusters.get(cluster.cluster_id)
        if track is None:
            before = len(out.commands)
            self.targeting.add_restrict_target(rollout, cluster, rollout.due(now), now, out)
            if len(out.commands) > before:
                record_change(rollout, now, beat.event_id, out)
            return
        replica = beat.replica_id
        held = beat.held.get(rollout.directive_id)
        holds_it = held is not None and held.revision == rollout.revision and held.digest == track.expected_digest
        newer = held is not None and held.revision > rollout.revision  # this rollout is being superseded
        live = self.replicas.live(cluster.cluster_id, now)
        if holds_it:
            if acknowledge(track, held.digest, now, self.backoff, replica, live):
                record_change(rollout, now, beat.event_id, out)
        elif track.applied and not beat.ready and track.models:
            # A replica that lost its state (a wiped disk) or a new one must get the restriction again before the
            # ClusterSynced that follows lets it answer checks. The cluster stays applied while another live
            # replica holds it (this one answers no check until then); with none, it is pending again.
            forget(track, replica)
            if not track.holding() & (live - {replica}):
                expect(track, track.expected_digest, rollout.due(now))
            self.sender.send(rollout, track, now, beat.event_id, out)
            record_change(rollout, now, beat.event_id, out)
        elif track.applied and track.models and _beat_after_ack(beat, track) and not newer:
            # Drift: it acknowledged this digest, and a heartbeat sent since shows something else.
            holding = held.digest if held is not None and held.revision == rollout.revision else None
            self._drifted(rollout, track, holding, now, beat.event_id, out, replica)

    def _drifted(
        self,
        rollout: Rollout,
        track: ClusterTrack,
        holding: str | None,
        now: datetime,
        cause: str,
        out: Outcome,
        replica: str,
    ) -> None:
        """A cluster that held the right state holds another (a forged command, lost state, a bug): on record,
        and re-sent now rather than at a deadline."""
        drift(track, holding, rollout.due(now), replica)
        out.notes.append(f"{name(track.cluster_id, replica)} drifted from {rollout.key}: {track.reason}")
        self.sender.send(rollout, track, now, cause, out)
        record_change(rollout, now, cause, out)

    def _track_for(
        self, directive_id: str, revision: int, action: str, cluster_id: str, out: Outcome
    ) -> tuple[ClusterTrack | None, Rollout | None]:
        rollout = self.state.rollouts.get(AssessmentKey(directive_id, revision, action))
        if rollout is None or not rollout.active or cluster_id not in rollout.clusters:
            out.notes.append(
                f"ack from {cluster_id} for {directive_id} r{revision} {action} matches no active rollout: ignored"
            )
            return None, None
        return rollout.clusters[cluster_id], rollout


def _beat_after_ack(beat: AgentHeartbeat, track: ClusterTrack) -> bool:
    """Whether the replica sent this heartbeat after its ack of the expected digest (an earlier one may predate
    what it applied). A track applied before replicas were recorded has only the cluster's ack time."""
    ack = track.replicas.get(beat.replica_id)
    if ack is not None:
        acked_at = ack.at if ack.digest == track.expected_digest else None
    else:
        acked_at = track.acked_at if not track.replicas else None
    return acked_at is not None and beat.occurred_at > acked_at
