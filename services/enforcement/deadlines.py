"""Time in the enforcement core (pure): starts assessments whose heartbeat grace ended, drops agent replicas whose
heartbeats lapsed (a cluster they held up may be applied now), marks clusters past the deadline overdue, re-sends
with a capped exponential backoff, and re-sends every unapplied restriction after a restart."""

from __future__ import annotations

from datetime import datetime

from services.enforcement.command_sender import CommandSender
from services.enforcement.outcome import Outcome
from services.enforcement.replicas import Replicas, name
from services.enforcement.state import EnforcementState
from services.enforcement.status_events import record_change, record_overdue
from services.enforcement.targeting import Targeting
from services.enforcement.tracking import Backoff, resend_due, schedule_next, settle


class Deadlines:
    """The rules the clock drives: what is due now, given when each cluster was last sent its commands."""

    def __init__(
        self, state: EnforcementState, targeting: Targeting, sender: CommandSender, backoff: Backoff, replicas: Replicas
    ) -> None:
        self.state = state
        self.targeting = targeting
        self.sender = sender
        self.backoff = backoff
        self.replicas = replicas

    def recover(self, now: datetime) -> Outcome:
        """After a restart, send every unapplied restriction again.

        RestrictCommands are a function of the persisted sets and tracks, so they are not kept in the
        outbox (a large set would be written to disk once per cluster); a crash between saving the state
        and publishing them is covered by this re-send. Agents re-confirm what they already hold.
        """
        out = Outcome()
        for rollout in self.state.active("restrict"):
            for track in [t for t in rollout.clusters.values() if not t.applied]:
                self.sender.send(rollout, track, now, rollout.cause, out)
                out.rollouts.add(rollout.key)
        return out

    def tick(self, now: datetime) -> Outcome:
        """Start assessments whose grace ended, drop lapsed replicas, mark missed deadlines overdue, re-send what is
        due."""
        out = Outcome()
        self.targeting.start_waiting(now, out)
        for cluster_id, replica in self.replicas.lapsed(now):
            out.clusters.add(cluster_id)
            out.notes.append(
                f"{name(cluster_id, replica)} lapsed: no heartbeat for {self.replicas.lapse.total_seconds():g} s, "
                "no longer counted"
            )
        for rollout in [r for r in self.state.rollouts.values() if r.active]:
            settled = [t for t in rollout.clusters.values() if settle(t, self.replicas.live(t.cluster_id, now), now)]
            if settled:
                record_change(rollout, now, rollout.cause, out)
            resent = [t for t in rollout.clusters.values() if resend_due(t, now)]
            for track in resent:
                self.sender.send(rollout, track, now, rollout.cause, out)
                schedule_next(track, now, self.backoff)
            record_overdue(rollout, now, out)
            if resent:
                record_change(rollout, now, rollout.cause, out)
        return out
