"""Several agent replicas per cluster: applied once every live replica holds the digest; a lapsed replica stops
counting; a late or restarted one is sent what it lacks and counts once it holds it; unknown replicas count nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pyroaring import BitMap

from services.enforcement.store import EnforcementStore
from services.enforcement.tracking import AWAITING, MISMATCH, Backoff, ClusterTrack, acknowledge, settle
from shared.contracts.serving import AgentHeartbeat, CommandApplied, CommandFailed, HeldDirective
from tests.unit.enforcement.scenario import T0, applied, assessment, at, core, feed, held_digest, of_type, to

KEY = ("D-1", 1, "restrict")
LAPSE_S = 5
RIGHT, WRONG = "a" * 64, "0" * 64
BACKOFF = Backoff(base_s=1, cap_s=8)


def track() -> ClusterTrack:
    return ClusterTrack(cluster_id="us-east", models=["fable-5"], expected_digest=RIGHT, due_at=at(60))


def beat(replica: str, *, ready: bool = True, held=None, cluster: str = "us-east") -> AgentHeartbeat:
    return AgentHeartbeat(
        producer="agent", cluster_id=cluster, replica_id=replica, models=["fable-5"], held=held or {}, ready=ready
    )


def ack(replica: str, digest: str, cluster: str = "us-east") -> CommandApplied:
    return applied(cluster, digest).model_copy(update={"replica_id": replica})


def started(*replicas: str, others: tuple[str, ...] = ()):
    """Replicas of us-east (and single agents of other clusters) heard at T0, then a restriction sent out."""
    coordinator = core(replica_lapse_s=LAPSE_S)
    assessed, chunks = assessment(sets={"fable-5": BitMap(range(50))})
    beats = [beat(r) for r in replicas] + [beat("", cluster=c) for c in others]
    commands, _ = feed(coordinator, [*beats, assessed, *chunks])
    return coordinator, held_digest(to(commands, "us-east"))


def cluster(coordinator, name: str = "us-east") -> ClusterTrack:
    return coordinator.rollouts[KEY].clusters[name]


# --- the rule on one track ----------------------------------------------------------------------------------


def test_a_cluster_is_applied_only_once_every_live_replica_holds_the_digest() -> None:
    t = track()
    assert acknowledge(t, RIGHT, at(1), BACKOFF, "r0", {"r0", "r1"})
    assert (t.state, t.reason) == ("pending", f"{AWAITING}: r1")
    assert acknowledge(t, RIGHT, at(2), BACKOFF, "r1", {"r0", "r1"})
    assert (t.state, t.acked_at, t.digest, t.reason) == ("applied", at(2), RIGHT, None)


def test_a_replica_that_is_no_longer_live_is_not_awaited() -> None:
    t = track()
    acknowledge(t, RIGHT, at(1), BACKOFF, "r0", {"r0", "r1"})
    assert not t.applied
    assert settle(t, {"r0"}, at(9))  # r1's heartbeats lapsed
    assert (t.state, t.acked_at) == ("applied", at(9))


def test_no_replica_holding_it_never_makes_a_cluster_applied_even_with_none_live() -> None:
    t = track()
    assert not settle(t, set(), at(1))
    acknowledge(t, WRONG, at(2), BACKOFF, "r0", {"r0"})
    assert not settle(t, set(), at(3))
    assert (t.state, t.reason, t.replicas["r0"].digest) == ("pending", MISMATCH, WRONG)


def test_a_single_agent_naming_no_replica_is_applied_by_its_ack_as_before() -> None:
    t = track()
    assert acknowledge(t, RIGHT, at(1), BACKOFF)
    assert t.applied and set(t.replicas) == {""}


def test_the_same_ack_again_changes_nothing() -> None:
    t = track()
    acknowledge(t, RIGHT, at(1), BACKOFF, "r0", {"r0"})
    assert not acknowledge(t, RIGHT, at(2), BACKOFF, "r0", {"r0"})
    assert t.replicas["r0"].at == at(1)


# --- the core: heartbeats, acks, time --------------------------------------------------------------------------


def test_the_verdict_waits_for_the_second_replica_and_progress_names_whom_it_awaits() -> None:
    coordinator, digest = started("r0", "r1", others=("eu-west",))
    _, events = feed(coordinator, [ack("r0", digest), applied("eu-west", digest)], now=at(1))
    assert cluster(coordinator).state == "pending"
    assert of_type(events, "DirectiveEnforced") == []
    progress = of_type(events, "EnforcementProgressed")[-1].clusters["us-east"]
    assert (progress.state, progress.reason, progress.replicas) == ("pending", f"{AWAITING}: r1", {"r0": digest})

    _, events = feed(coordinator, [ack("r1", digest)], now=at(2))
    [enforced] = of_type(events, "DirectiveEnforced")
    assert enforced.clusters["us-east"].replicas == {"r0": digest, "r1": digest}
    assert enforced.clusters["us-east"].state == "applied"


def test_a_heartbeat_holding_the_digest_counts_as_that_replicas_ack() -> None:
    coordinator, digest = started("r0", "r1")
    feed(coordinator, [ack("r0", digest)], now=at(1))
    held = {"D-1": HeldDirective(revision=1, digest=digest)}
    _, events = feed(coordinator, [beat("r1", held=held)], now=at(2))
    assert cluster(coordinator).applied and of_type(events, "DirectiveEnforced")


def test_a_replica_whose_heartbeats_lapse_stops_counting_and_the_cluster_is_applied() -> None:
    coordinator, digest = started("r0", "r1")
    feed(coordinator, [ack("r0", digest), beat("r0")], now=at(LAPSE_S - 1))
    coordinator.tick(at(LAPSE_S))  # r1 last heard at T0: still within the bound
    assert not cluster(coordinator).applied

    outcome = coordinator.tick(at(LAPSE_S + 1))  # r1 last heard at T0: lapsed; r0 heard at LAPSE_S - 1: live
    assert cluster(coordinator).applied
    assert of_type(outcome.events, "DirectiveEnforced")
    assert coordinator.clusters["us-east"].replicas == ["r0"]
    assert "us-east" in outcome.clusters  # the membership change is saved
    assert any("replica r1 of cluster us-east lapsed" in note for note in outcome.notes)


def test_a_restarted_replica_is_sent_the_restriction_again_and_counts_once_it_acks() -> None:
    coordinator, digest = started("r0", "r1")
    feed(coordinator, [ack("r0", digest), beat("r0")], now=at(LAPSE_S - 1))
    coordinator.tick(at(LAPSE_S + 1))
    assert cluster(coordinator).applied

    outcome = coordinator.on_heartbeat(beat("r1", ready=False), at(LAPSE_S + 2))  # back, without what it held
    assert to(outcome.commands, "us-east") and outcome.markers  # re-sent, then the marker after it
    assert any("replica r1 of cluster us-east joined" in note for note in outcome.notes)
    assert cluster(coordinator).applied  # r0 holds it and r1 answers no check until synced

    feed(coordinator, [ack("r1", digest)], now=at(LAPSE_S + 3))
    assert cluster(coordinator).replicas["r1"].digest == digest


def test_a_lone_replica_that_lost_its_state_makes_the_cluster_pending_again() -> None:
    coordinator, digest = started("r0")
    feed(coordinator, [ack("r0", digest)], now=at(1))
    assert cluster(coordinator).applied
    outcome = coordinator.on_heartbeat(beat("r0", ready=False), at(2))
    assert cluster(coordinator).state == "pending" and to(outcome.commands, "us-east")


def test_an_ack_from_an_unknown_replica_is_refused_and_counts_nothing() -> None:
    coordinator, digest = started("r0")
    before = cluster(coordinator).model_copy(deep=True)
    outcome = coordinator.on_applied(ack("ghost", digest), at(1))
    assert outcome.events == [] and outcome.commands == [] and not outcome.rollouts
    assert cluster(coordinator) == before and not cluster(coordinator).applied
    [note] = outcome.notes
    assert "unknown replica 'ghost' of cluster us-east" in note and "counts nothing" in note


def test_a_failure_from_an_unknown_replica_is_refused_too() -> None:
    coordinator, _ = started("r0")
    failure = CommandFailed(
        producer="agent", cluster_id="us-east", replica_id="ghost", directive_id="D-1", revision=1, reason="disk"
    )
    outcome = coordinator.on_failed(failure, at(1))
    assert cluster(coordinator).state == "pending" and outcome.events == []
    assert "unknown replica 'ghost'" in outcome.notes[0]


def test_an_ack_from_a_replica_whose_heartbeats_lapsed_is_refused_until_it_beats_again() -> None:
    coordinator, digest = started("r0", "r1")
    feed(coordinator, [beat("r0")], now=at(LAPSE_S))
    coordinator.tick(at(LAPSE_S + 1))  # r1 lapsed
    outcome = coordinator.on_applied(ack("r1", digest), at(LAPSE_S + 2))
    assert "unknown replica 'r1'" in outcome.notes[0] and "r1" not in cluster(coordinator).replicas
    feed(coordinator, [beat("r1"), ack("r1", digest)], now=at(LAPSE_S + 3))
    assert cluster(coordinator).replicas["r1"].digest == digest


def test_an_ack_with_a_digest_that_does_not_match_counts_nothing_and_is_named() -> None:
    coordinator, digest = started("r0", "r1")
    outcome = coordinator.on_applied(ack("r0", WRONG), at(1))
    feed(coordinator, [ack("r1", digest)], now=at(2))
    t = cluster(coordinator)
    assert not t.applied and t.holding() == {"r1"} and t.reason == f"{AWAITING}: r0"
    assert f"holds digest {WRONG}, expected {digest}: not counted" in outcome.notes[0]


def test_acks_on_the_wire_without_a_replica_id_still_count() -> None:
    coordinator, digest = started("")
    old = '{"type":"CommandApplied","event_id":"e1","producer":"agent","cluster_id":"us-east","directive_id":"D-1",'
    old += f'"revision":1,"action":"restrict","digest":"{digest}","occurred_at":"2026-11-27T09:00:01Z"}}'
    message = CommandApplied.model_validate_json(old)
    assert message.replica_id == ""
    feed(coordinator, [message], now=at(1))
    assert cluster(coordinator).applied


def test_a_single_agents_records_and_progress_read_as_before_replicas() -> None:
    coordinator, digest = started("")
    _, events = feed(coordinator, [ack("", digest)], now=at(1))
    assert "replica" not in ack("", digest).model_dump_json() and "replica" not in beat("").model_dump_json()
    assert all("replicas" not in event.model_dump_json() for event in events)
    assert '"replica_id":"r0"' in ack("r0", digest).model_dump_json()


def saved(coordinator, store: EnforcementStore, messages, now) -> None:
    """Run messages through the core and commit each outcome, as the service does."""
    handlers = {"AgentHeartbeat": "on_heartbeat", "CommandApplied": "on_applied"}
    handlers |= {"ImpactAssessed": "on_assessed", "AffectedSetChunk": "on_chunk"}
    for message in messages:
        store.save(getattr(coordinator, handlers[message.type])(message, now), coordinator)


def test_replicas_heard_before_a_restart_get_a_full_lapse_bound_after_it(tmp_path) -> None:
    coordinator, store = core(replica_lapse_s=LAPSE_S), EnforcementStore(tmp_path)
    assessed, chunks = assessment(sets={"fable-5": BitMap(range(50))})
    saved(coordinator, store, [beat("r0"), beat("r1"), assessed, *chunks], T0)
    digest = cluster(coordinator).expected_digest
    saved(coordinator, store, [ack("r0", digest)], at(1))
    store.close()

    store = EnforcementStore(tmp_path)
    reloaded = store.load(core(replica_lapse_s=LAPSE_S))
    store.close()
    assert reloaded.clusters["us-east"].replicas == ["r0", "r1"]
    later = T0 + timedelta(hours=1)
    assert reloaded.acks.replicas.live("us-east", later) == {"r0", "r1"}  # first looked at now: a full bound each
    reloaded.on_heartbeat(beat("r0"), later + timedelta(seconds=LAPSE_S - 1))
    reloaded.tick(later + timedelta(seconds=LAPSE_S - 1))
    assert not cluster(reloaded).applied  # r1 may still be alive
    reloaded.tick(later + timedelta(seconds=LAPSE_S + 1))
    assert cluster(reloaded).applied  # r1 never beat again: lapsed; r0 (live) acked before the restart
    assert reloaded.clusters["us-east"].replicas == ["r0"]


@pytest.mark.parametrize("replica", ["R0", "-r", "r_0", "x" * 64])
def test_a_malformed_replica_id_is_refused_by_the_contract(replica: str) -> None:
    with pytest.raises(ValueError, match="replica_id"):
        beat(replica)
