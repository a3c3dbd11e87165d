"""What enforcement measures (shared.runtime.metrics): time to enforce and missed deadlines from the status events an
outcome carries, per-cluster rollout states and heartbeat ages read from the coordinator's memory at scrape time.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from datetime import timedelta

import structlog

from services.enforcement.coordinator import Coordinator
from services.enforcement.outcome import Outcome
from services.enforcement.rollout import Rollout
from shared.contracts.enforcement import DirectiveEnforced, EnforcementOverdue
from shared.runtime.metrics import (
    AGENT_HEARTBEAT_AGE,
    AGENT_HELD_DIGEST_AGE,
    CLUSTER_ROLLOUTS,
    DEADLINES_MISSED,
    ROLLOUT_STATES,
    TIME_TO_ENFORCE,
)

log = structlog.get_logger(service="enforcement")


def kind_of(rollout: Rollout) -> str:
    """The directive step a rollout enforces: issue, amend (a later revision) or lift."""
    if rollout.action == "lift":
        return "lift"
    return "issue" if rollout.revision == 1 else "amend"


def observe_outcome(outcome: Outcome, core: Coordinator) -> None:
    """Count what an outcome's status events report: a revision enforced everywhere, deadlines missed (logged)."""
    for event in outcome.events:
        rollout = core.rollouts.get((event.directive_id, event.revision, event.action))
        if isinstance(event, DirectiveEnforced) and rollout is not None:
            assessed = rollout.deadline - timedelta(seconds=rollout.scope.enforcement_deadline_s)
            TIME_TO_ENFORCE.labels(kind_of(rollout)).observe(max((event.occurred_at - assessed).total_seconds(), 0))
        elif isinstance(event, EnforcementOverdue):
            for cluster in event.overdue_clusters:
                DEADLINES_MISSED.labels(cluster).inc()
            log.warning(
                "enforcement deadline missed",
                directive_id=event.directive_id,
                revision=event.revision,
                action=event.action,
                clusters=event.overdue_clusters,
            )


def export_state(
    core: Coordinator,
    heard: Mapping[str, float],
    now: float,
    drifted_since: MutableMapping[str, float] | None = None,
) -> None:
    """Set the rollout-state gauges of every known cluster (0 for states none is in), heartbeat ages and how
    long each cluster's held digests have differed from what must be in force.

    `heard`: monotonic time of each cluster's last heartbeat; `now`: the monotonic time now; `drifted_since`:
    when each cluster was first seen drifted (kept by the caller between scrapes, so to a scrape's resolution).
    """
    counts = {(cluster, state): 0 for cluster in core.clusters for state in ROLLOUT_STATES}
    for rollout in core.rollouts.values():
        if rollout.active:
            for cluster, track in rollout.clusters.items():
                # the coordinator's own state: drift is decided there (a heartbeat after the ack that
                # holds something else), so the gauge and the status events say the same
                counts[(cluster, track.state)] = counts.get((cluster, track.state), 0) + 1
    for (cluster, state), revisions in counts.items():
        CLUSTER_ROLLOUTS.labels(cluster, state).set(revisions)
    for cluster, at in heard.items():
        AGENT_HEARTBEAT_AGE.labels(cluster).set(max(now - at, 0.0))
    if drifted_since is not None:
        drifted = {cluster for (cluster, state), revisions in counts.items() if state == "drifted" and revisions}
        for cluster in set(drifted_since) - drifted:
            del drifted_since[cluster]
        for cluster in core.clusters:
            since = drifted_since.setdefault(cluster, now) if cluster in drifted else now
            AGENT_HELD_DIGEST_AGE.labels(cluster).set(now - since)
