"""Every Prometheus metric of Countermand, defined once (prometheus-client), and the /metrics route.

Names follow Prometheus conventions (base units, `_total` counters, `_seconds`); labels are bounded: service,
cluster, model, directive kind, state, channel, outcome, topic, group. Never a user id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

ROLLOUT_STATES = ("pending", "applied", "overdue", "drifted", "failed")

TIME_TO_ENFORCE = Histogram(
    "countermand_time_to_enforce_seconds",
    "From a directive event to every targeted cluster acknowledging it with the right digest.",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
CLUSTER_ROLLOUTS = Gauge(
    "countermand_cluster_rollouts",
    "Directive revisions per serving cluster and enforcement state.",
    ["cluster", "state"],
)
DEADLINES_MISSED = Counter(
    "countermand_deadlines_missed_total", "Clusters that had not acknowledged by a directive's deadline.", ["cluster"]
)
AGENT_HEARTBEAT_AGE = Gauge(
    "countermand_agent_heartbeat_age_seconds",
    "Seconds since enforcement last heard a cluster's heartbeat.",
    ["cluster"],
)
AGENT_CONTROL_PLANE_AGE = Gauge(
    "countermand_agent_control_plane_age_seconds",
    "Seconds since the agent last heard from the control plane.",
    ["cluster"],
)
AGENT_HELD_DIGEST_AGE = Gauge(
    "countermand_agent_held_digest_age_seconds",
    "Age of the oldest digest an agent holds that differs from what must be in force (0 when all match).",
    ["cluster"],
)
AFFECTED_USERS = Gauge("countermand_affected_users", "Users covered by the active directives, per model.", ["model"])
NOTICES = Counter("countermand_notices_total", "Notices by channel and outcome.", ["channel", "outcome"])
DEAD_LETTERS = Counter(
    "countermand_dead_letters_total",
    "Records dead-lettered, by consuming service and source topic.",
    ["service", "topic"],
)
CONSUMER_LAG = Gauge(
    "countermand_consumer_lag_records", "Records waiting for a consumer group on a topic.", ["group", "topic"]
)
ACCESS_CHECKS = Counter(
    "countermand_access_checks_total", "Access checks answered by an agent, by decision.", ["cluster", "decision"]
)


Refresh = Callable[[], None]


def metrics_response() -> Response:
    """The process's metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def install_metrics(api: FastAPI, refresh: Refresh | None = None) -> None:
    """GET /metrics on a service's HTTP app, open like /healthz (no credential: it holds no user data).

    `refresh` brings gauges read from the service's memory (ages, counts kept as plain ints) up to date just
    before the exposition; it must not do I/O, so a scrape answers at once even with the broker down.
    """

    @api.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if refresh is not None:
            refresh()
        return metrics_response()


def observe_lag(group: str, committed: Mapping[tuple[str, int], int], ends: Mapping[tuple[str, int], int]) -> None:
    """Set a group's lag per topic: records between its committed offsets and the ends (no commit: from 0)."""
    lag: dict[str, int] = {}
    for (topic, partition), end in ends.items():
        lag[topic] = lag.get(topic, 0) + max(end - committed.get((topic, partition), 0), 0)
    for topic, records in lag.items():
        CONSUMER_LAG.labels(group, topic).set(records)
