"""One cluster's progress on one directive revision: the state machine, its backoff, and the rule over the
cluster's agent replicas (applied once every live replica holds the expected digest) (pure)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.contracts.enforcement import ClusterProgress, ClusterState
from shared.contracts.serving import DEFAULT_REPLICA

MISMATCH = "digest mismatch"
MISSED_DEADLINE = "no acknowledgement by the deadline"
DRIFT = "drift"
AWAITING = "awaiting replicas"


class Backoff(BaseModel):
    """Exponential re-send delay: base * 2**(attempts-1), never more than cap."""

    model_config = ConfigDict(frozen=True)

    base_s: float = 1.0
    cap_s: float = 60.0

    def after(self, attempts: int, now: datetime) -> datetime:
        """When the next re-send is due after `attempts` sends."""
        return now + timedelta(seconds=min(self.cap_s, self.base_s * 2 ** max(attempts - 1, 0)))


class ReplicaAck(BaseModel):
    """What one replica of the cluster's agent last acknowledged (or showed holding) for the revision, and when."""

    model_config = ConfigDict(extra="forbid")

    digest: str
    at: AwareDatetime


class ClusterTrack(BaseModel):
    """Where one cluster stands for one directive revision, and what it must acknowledge."""

    model_config = ConfigDict(extra="forbid")

    cluster_id: str
    models: list[str]
    expected_digest: str
    due_at: AwareDatetime
    state: ClusterState = "pending"
    first_sent_at: AwareDatetime | None = None
    sent_at: AwareDatetime | None = None
    acked_at: AwareDatetime | None = None
    attempts: int = 0
    digest: str | None = None
    reason: str | None = None
    next_resend_at: AwareDatetime | None = None
    replicas: dict[str, ReplicaAck] = {}

    @property
    def applied(self) -> bool:
        return self.state == "applied"

    def holding(self) -> set[str]:
        """Replicas that acknowledged (or showed) the expected digest."""
        return {r for r, ack in self.replicas.items() if ack.digest == self.expected_digest}

    def awaiting(self, live: Collection[str]) -> list[str]:
        """Live replicas that do not hold the expected digest yet."""
        return sorted(set(live) - self.holding())

    def latency_s(self) -> float:
        """Seconds from the first send to the matching acknowledgement."""
        if self.acked_at is None or self.first_sent_at is None:
            return 0.0
        return max((self.acked_at - self.first_sent_at).total_seconds(), 0.0)


def mark_sent(track: ClusterTrack, now: datetime) -> None:
    """Commands went out to the cluster (again)."""
    track.attempts += 1
    track.sent_at = now
    track.first_sent_at = track.first_sent_at or now


def expect(track: ClusterTrack, digest: str, due_at: datetime) -> None:
    """The cluster must now acknowledge a new digest (after a delta) by due_at."""
    track.expected_digest = digest
    track.due_at = due_at
    if track.applied:
        track.state, track.reason = "pending", None


def acknowledge(
    track: ClusterTrack,
    digest: str,
    now: datetime,
    backoff: Backoff,
    replica: str = DEFAULT_REPLICA,
    live: Collection[str] = (),
) -> bool:
    """Apply one replica's ack; returns whether anything changed. A wrong digest schedules a re-send; the right
    one makes the cluster applied once every live replica holds it (`settle`)."""
    known = track.replicas.get(replica)
    if known is None or known.digest != digest:
        track.replicas[replica] = ReplicaAck(digest=digest, at=now)
    if digest == track.expected_digest:
        return settle(track, live, now) or known is None or known.digest != digest
    track.state = "overdue" if track.state == "overdue" else "pending"
    track.digest, track.reason = digest, MISMATCH
    track.next_resend_at = backoff.after(track.attempts, now)
    return True


def settle(track: ClusterTrack, live: Collection[str], now: datetime) -> bool:
    """Mark the cluster applied when some replica holds the expected digest and no live one lacks it (a replica
    whose heartbeats lapsed is not live); else say whom it awaits. Returns whether anything changed."""
    if track.applied or not track.holding():
        return False
    awaiting = track.awaiting(live)
    if not awaiting:
        track.state, track.acked_at, track.digest, track.reason, track.next_resend_at = (
            "applied",
            now,
            track.expected_digest,
            None,
            None,
        )
        return True
    waiting = f"{AWAITING}: {', '.join(awaiting)}"
    reason = f"{MISSED_DEADLINE}; {waiting}" if track.state == "overdue" else waiting
    changed = reason != track.reason
    track.reason = reason
    return changed


def forget(track: ClusterTrack, replica: str) -> None:
    """The replica no longer holds what it acknowledged (its state was lost): it must acknowledge again."""
    track.replicas.pop(replica, None)


def drift(track: ClusterTrack, held_digest: str | None, due_at: datetime, replica: str = DEFAULT_REPLICA) -> None:
    """A heartbeat or ack shows the cluster (one of its replicas) no longer holds what it acknowledged: it is
    re-sent now, due again by due_at."""
    forget(track, replica)
    track.state, track.digest, track.due_at, track.next_resend_at = "drifted", held_digest, due_at, None
    track.reason = f"{DRIFT}: holds {held_digest or 'nothing'}, expected {track.expected_digest}"


def fail(track: ClusterTrack, reason: str, now: datetime, backoff: Backoff) -> None:
    """The cluster could not apply the command; try again later."""
    track.state, track.reason = "failed", reason
    track.next_resend_at = backoff.after(track.attempts, now)


def resend_due(track: ClusterTrack, now: datetime) -> bool:
    """Whether the cluster should be sent its commands again now (marks it overdue past its deadline)."""
    if track.applied:
        return False
    if track.state != "overdue" and now >= track.due_at:
        track.state = "overdue"
        track.reason = (
            MISSED_DEADLINE if track.reason in (None, MISSED_DEADLINE) else f"{MISSED_DEADLINE}; {track.reason}"
        )
        return True
    return track.next_resend_at is not None and now >= track.next_resend_at


def schedule_next(track: ClusterTrack, now: datetime, backoff: Backoff) -> None:
    """After a re-send, when the following one is due if no ack comes."""
    track.next_resend_at = backoff.after(track.attempts, now)


def progress_of(track: ClusterTrack) -> ClusterProgress:
    """The wire view of a track."""
    return ClusterProgress(
        state=track.state,
        sent_at=track.sent_at,
        acked_at=track.acked_at,
        attempts=track.attempts,
        digest=track.digest,
        reason=track.reason,
        expected_digest=track.expected_digest,
        models=track.models,
        replicas={r: ack.digest for r, ack in sorted(track.replicas.items())},
    )
