"""Which replicas of a cluster's agent are live (pure): a replica is live while its last heartbeat is within the
lapse bound; one whose heartbeats lapsed stops counting, one that beats again counts again."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.enforcement.state import EnforcementState
from shared.contracts.serving import DEFAULT_REPLICA


class Replicas:
    """The cluster's agent replicas, as their heartbeats tell: who joined, who is live, who lapsed."""

    def __init__(self, state: EnforcementState, lapse: timedelta) -> None:
        self.state = state
        self.lapse = lapse

    def beat(self, cluster_id: str, replica: str, now: datetime) -> None:
        """A heartbeat of this replica was taken in now."""
        self.state.heard[(cluster_id, replica)] = now

    def live(self, cluster_id: str, now: datetime) -> set[str]:
        """The cluster's replicas whose last heartbeat is within the lapse bound."""
        cluster = self.state.clusters.get(cluster_id)
        members = cluster.replicas if cluster is not None else []
        return {r for r in members if now - self._heard(cluster_id, r, now) <= self.lapse}

    def counts(self, cluster_id: str, replica: str, now: datetime) -> bool:
        """Whether an ack of this replica may count: a live replica's, or one naming no replica (a single agent,
        or an agent from before replicas: counted as ever)."""
        return replica == DEFAULT_REPLICA or replica in self.live(cluster_id, now)

    def lapsed(self, now: datetime) -> list[tuple[str, str]]:
        """(cluster, replica) of every member whose heartbeats lapsed, dropped from its cluster's members."""
        gone: list[tuple[str, str]] = []
        for cluster in self.state.clusters.values():
            dead = [r for r in cluster.replicas if now - self._heard(cluster.cluster_id, r, now) > self.lapse]
            for replica in dead:
                cluster.replicas.remove(replica)
                self.state.heard.pop((cluster.cluster_id, replica), None)
                gone.append((cluster.cluster_id, replica))
        return gone

    def _heard(self, cluster_id: str, replica: str, now: datetime) -> datetime:
        # A member not heard since this process started (its membership was loaded from disk) gets a full bound.
        return self.state.heard.setdefault((cluster_id, replica), now)


def name(cluster_id: str, replica: str) -> str:
    """How logs and notes name a replica."""
    return f"cluster {cluster_id}" if replica == DEFAULT_REPLICA else f"replica {replica} of cluster {cluster_id}"
