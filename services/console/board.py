"""What the console shows, folded from the directive, enforcement and acks topics: a pure projection (no I/O,
no clock: time comes in as an argument). Each message returns the keys of what changed, for the live pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contracts.audit import AuditCheckpoint
from shared.contracts.directives import DirectiveIssued, DirectiveLifted
from shared.contracts.enforcement import DirectiveEnforced, EnforcementOverdue, EnforcementProgressed
from shared.contracts.serving import AgentHeartbeat, CommandApplied, CommandFailed


@dataclass
class Revision:
    """One issued revision of a directive, as recorded."""

    event: DirectiveIssued


@dataclass
class Rollout:
    """Enforcement of one directive revision and action across the clusters."""

    revision: int
    action: str
    expected_digest: str
    deadline: datetime | None
    clusters: dict[str, dict[str, Any]]
    started_at: datetime
    enforced_at: datetime | None = None
    ack_latency_s: dict[str, float] = field(default_factory=dict)
    overdue: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for progress in self.clusters.values():
            found[progress["state"]] = found.get(progress["state"], 0) + 1
        return found

    def time_to_enforce_s(self) -> float | None:
        if self.enforced_at is None:
            return None
        return max(self.ack_latency_s.values(), default=(self.enforced_at - self.started_at).total_seconds())


@dataclass
class DirectiveRecord:
    """Everything recorded about one directive: revisions, whether lifted, its latest rollout."""

    directive_id: str
    revisions: list[Revision] = field(default_factory=list)
    lifted: DirectiveLifted | None = None
    rollout: Rollout | None = None

    @property
    def current(self) -> DirectiveIssued:
        return self.revisions[-1].event

    @property
    def status(self) -> str:
        return "lifted" if self.lifted is not None else "in force"


@dataclass
class ClusterRecord:
    """A serving cluster as its agent last reported itself, with its latest acknowledgements."""

    cluster_id: str
    region: str = ""
    models: list[str] = field(default_factory=list)
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    ready: bool = False
    last_heartbeat: datetime | None = None
    acks: list[dict[str, Any]] = field(default_factory=list)  # newest first, a few

    def staleness_s(self, now: datetime) -> float | None:
        return None if self.last_heartbeat is None else max(0.0, (now - self.last_heartbeat).total_seconds())


ACKS_KEPT = 10
TIMELINE_KEPT = 2000
CHECKPOINTS_KEPT = 50


class Board:
    """The console's view of directives, their enforcement and the clusters; `apply` folds one message."""

    def __init__(self) -> None:
        self.directives: dict[str, DirectiveRecord] = {}
        self.clusters: dict[str, ClusterRecord] = {}
        self.timeline: list[dict[str, Any]] = []  # directive and enforcement milestones, oldest first
        self.checkpoints: list[AuditCheckpoint] = []  # newest last

    def _note(self, at: datetime, directive_id: str, what: str, event_id: str) -> None:
        if any(entry["event_id"] == event_id for entry in self.timeline[-50:]):
            return
        self.timeline.append({"at": at.isoformat(), "directive_id": directive_id, "what": what, "event_id": event_id})
        self.timeline.sort(key=lambda entry: entry["at"])
        del self.timeline[:-TIMELINE_KEPT]

    def apply(self, message: Any) -> list[str]:
        """Fold a message in (every rule is idempotent: a redelivery changes nothing); the keys of what changed
        (`directive:<id>`, `cluster:<id>`)."""
        rule = _RULES.get(type(message))
        return rule(self, message) if rule else []

    def directive(self, directive_id: str) -> DirectiveRecord | None:
        found = self.directives.get(directive_id)
        return found if found is not None and found.revisions else None

    def listing(self) -> list[DirectiveRecord]:
        """Directives with at least one revision, in force first, then by id."""
        known = [d for d in self.directives.values() if d.revisions]
        return sorted(known, key=lambda d: (d.lifted is not None, d.directive_id))

    def _record(self, directive_id: str) -> DirectiveRecord:
        return self.directives.setdefault(directive_id, DirectiveRecord(directive_id))

    def _cluster(self, cluster_id: str) -> ClusterRecord:
        return self.clusters.setdefault(cluster_id, ClusterRecord(cluster_id))

    def on_issued(self, event: DirectiveIssued) -> list[str]:
        record = self._record(event.directive_id)
        if record.revisions and event.revision <= record.current.revision:
            return []  # an older revision arriving late is ignored
        record.revisions.append(Revision(event))
        record.lifted = None
        approvals = ", ".join(event.approved_by) or "nobody"
        who = "emergency role alone" if event.emergency else f"proposed by {event.proposed_by}, approved by {approvals}"
        self._note(event.occurred_at, event.directive_id, f"revision {event.revision} issued ({who})", event.event_id)
        return [f"directive:{event.directive_id}"]

    def on_lifted(self, event: DirectiveLifted) -> list[str]:
        record = self._record(event.directive_id)
        record.lifted = event
        self._note(
            event.occurred_at, event.directive_id, f"lifted: {event.reason or 'no reason given'}", event.event_id
        )
        return [f"directive:{event.directive_id}"]

    def on_progressed(self, event: EnforcementProgressed) -> list[str]:
        record = self._record(event.directive_id)
        clusters = {cid: p.model_dump(mode="json") for cid, p in event.clusters.items()}
        rollout = record.rollout
        if rollout is None or (rollout.revision, rollout.action) != (event.revision, event.action):
            rollout = Rollout(
                event.revision, event.action, event.expected_digest, event.deadline, {}, event.occurred_at
            )
            record.rollout = rollout
        rollout.clusters = clusters
        rollout.expected_digest = event.expected_digest
        rollout.deadline = event.deadline
        return [f"directive:{event.directive_id}"]

    def on_enforced(self, event: DirectiveEnforced) -> list[str]:
        record = self._record(event.directive_id)
        rollout = record.rollout
        if rollout is None or (rollout.revision, rollout.action) != (event.revision, event.action):
            rollout = Rollout(event.revision, event.action, event.digest, None, {}, event.occurred_at)
            record.rollout = rollout
        rollout.clusters = {cid: p.model_dump(mode="json") for cid, p in event.clusters.items()}
        rollout.enforced_at = event.occurred_at
        rollout.ack_latency_s = dict(event.ack_latency_s)
        what = f"{event.action} of revision {event.revision} enforced on {len(event.clusters)} clusters"
        self._note(event.occurred_at, event.directive_id, what, event.event_id)
        return [f"directive:{event.directive_id}"]

    def on_overdue(self, event: EnforcementOverdue) -> list[str]:
        rollout = self._record(event.directive_id).rollout
        if rollout is None or (rollout.revision, rollout.action) != (event.revision, event.action):
            return []
        rollout.overdue = list(event.overdue_clusters)
        what = f"{event.action} of revision {event.revision} overdue on {', '.join(event.overdue_clusters)}"
        self._note(event.occurred_at, event.directive_id, what, event.event_id)
        for cluster_id in event.overdue_clusters:
            rollout.clusters.setdefault(cluster_id, {})["state"] = "overdue"
        return [f"directive:{event.directive_id}"]

    def on_heartbeat(self, beat: AgentHeartbeat) -> list[str]:
        cluster = self._cluster(beat.cluster_id)
        if cluster.last_heartbeat is not None and beat.occurred_at < cluster.last_heartbeat:
            return []
        cluster.region = beat.region
        cluster.models = list(beat.models)
        cluster.held = {d: h.model_dump(mode="json") for d, h in beat.held.items()}
        cluster.ready = beat.ready
        cluster.last_heartbeat = beat.occurred_at
        return [f"cluster:{beat.cluster_id}"]

    def on_ack(self, ack: CommandApplied | CommandFailed) -> list[str]:
        cluster = self._cluster(ack.cluster_id)
        if any(a["event_id"] == ack.event_id for a in cluster.acks):
            return []
        entry = {
            "event_id": ack.event_id,
            "directive_id": ack.directive_id,
            "revision": ack.revision,
            "outcome": "applied" if isinstance(ack, CommandApplied) else "failed",
            "action": getattr(ack, "action", ""),
            "digest": getattr(ack, "digest", None),
            "reason": getattr(ack, "reason", None),
            "at": ack.occurred_at.isoformat(),
        }
        cluster.acks = [entry, *cluster.acks][:ACKS_KEPT]
        return [f"cluster:{ack.cluster_id}"]


def on_checkpoint(board: Board, checkpoint: AuditCheckpoint) -> list[str]:
    if any(c.event_id == checkpoint.event_id for c in board.checkpoints):
        return []
    board.checkpoints = sorted([*board.checkpoints, checkpoint], key=lambda c: c.entries)[-CHECKPOINTS_KEPT:]
    return ["audit:checkpoint"]


_RULES: dict[type, Any] = {
    AuditCheckpoint: on_checkpoint,
    DirectiveIssued: Board.on_issued,
    DirectiveLifted: Board.on_lifted,
    EnforcementProgressed: Board.on_progressed,
    DirectiveEnforced: Board.on_enforced,
    EnforcementOverdue: Board.on_overdue,
    AgentHeartbeat: Board.on_heartbeat,
    CommandApplied: Board.on_ack,
    CommandFailed: Board.on_ack,
}
