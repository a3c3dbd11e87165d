"""What enforcement measures: time to enforce by kind, missed deadlines, rollout states per cluster (drift
included) and heartbeat ages, read from the core's outcomes and memory."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from services.enforcement.measures import export_state, observe_outcome
from shared.contracts.serving import HeldDirective
from tests.unit.enforcement.scenario import applied, assessment, at, core, feed, heartbeat, held_digest, to


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def started(*clusters: str):
    coordinator = core()
    assessed, chunks = assessment(deadline_s=60)
    commands, _ = feed(coordinator, [*(heartbeat(c, "fable-5") for c in clusters), assessed, *chunks])
    return coordinator, commands


def states(coordinator, cluster: str) -> dict[str, float]:
    export_state(coordinator, {}, 0.0)
    found = {s: sample("countermand_cluster_rollouts", cluster=cluster, state=s) for s in ("pending", "applied")}
    return {**found, "drifted": sample("countermand_cluster_rollouts", cluster=cluster, state="drifted")}


def test_time_to_enforce_is_observed_once_from_the_assessment_when_the_last_cluster_applied() -> None:
    coordinator, commands = started("m-east", "m-west")
    before = (
        sample("countermand_time_to_enforce_seconds_count", kind="issue"),
        sample("countermand_time_to_enforce_seconds_sum", kind="issue"),
    )
    observe_outcome(coordinator.on_applied(applied("m-east", held_digest(to(commands, "m-east"))), at(1)), coordinator)
    observe_outcome(coordinator.on_applied(applied("m-west", held_digest(to(commands, "m-west"))), at(4)), coordinator)
    after = (
        sample("countermand_time_to_enforce_seconds_count", kind="issue"),
        sample("countermand_time_to_enforce_seconds_sum", kind="issue"),
    )
    # The histogram is the process's: other tests' observations are in its sum, so the difference is a float's.
    assert after[0] - before[0] == 1
    assert after[1] - before[1] == pytest.approx(4.0)


def test_a_missed_deadline_is_counted_for_each_silent_cluster() -> None:
    coordinator, commands = started("d-east", "d-west")
    observe_outcome(coordinator.on_applied(applied("d-east", held_digest(to(commands, "d-east"))), at(1)), coordinator)
    before = sample("countermand_deadlines_missed_total", cluster="d-west")
    observe_outcome(coordinator.tick(at(60)), coordinator)
    assert sample("countermand_deadlines_missed_total", cluster="d-west") - before == 1
    assert sample("countermand_deadlines_missed_total", cluster="d-east") == 0
    export_state(coordinator, {}, 0.0)
    assert sample("countermand_cluster_rollouts", cluster="d-west", state="overdue") == 1


def test_rollout_states_per_cluster_pending_applied_then_drifted_when_a_heartbeat_holds_something_else() -> None:
    coordinator, commands = started("s-east")
    assert states(coordinator, "s-east") == {"pending": 1, "applied": 0, "drifted": 0}
    held = {"D-1": HeldDirective(revision=1, digest=held_digest(commands))}
    feed(coordinator, [heartbeat("s-east", "fable-5", held=held)], now=at(1))
    assert states(coordinator, "s-east") == {"pending": 0, "applied": 1, "drifted": 0}
    feed(coordinator, [heartbeat("s-east", "fable-5", held={})], now=at(2))
    assert states(coordinator, "s-east") == {"pending": 0, "applied": 0, "drifted": 1}


def test_heartbeat_age_is_the_time_since_the_last_heartbeat() -> None:
    export_state(core(), {"h-east": 10.0}, 12.5)
    assert sample("countermand_agent_heartbeat_age_seconds", cluster="h-east") == 2.5


def test_held_digest_age_counts_from_when_a_cluster_was_first_seen_drifted_and_resets_when_it_matches() -> None:
    coordinator, commands = started("g-east")
    held = {"D-1": HeldDirective(revision=1, digest=held_digest(commands))}
    feed(coordinator, [heartbeat("g-east", "fable-5", held=held)], now=at(1))
    since: dict[str, float] = {}
    export_state(coordinator, {}, 100.0, since)
    assert sample("countermand_agent_held_digest_age_seconds", cluster="g-east") == 0
    feed(coordinator, [heartbeat("g-east", "fable-5", held={})], now=at(2))
    export_state(coordinator, {}, 101.0, since)
    export_state(coordinator, {}, 104.0, since)
    assert sample("countermand_agent_held_digest_age_seconds", cluster="g-east") == 3
    feed(coordinator, [heartbeat("g-east", "fable-5", held=held)], now=at(3))
    export_state(coordinator, {}, 105.0, since)
    assert sample("countermand_agent_held_digest_age_seconds", cluster="g-east") == 0 and since == {}
