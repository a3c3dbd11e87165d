"""The per-cluster state machine: applied, digest mismatch, failure, overdue, verdict once."""

from __future__ import annotations

from itertools import pairwise

from pyroaring import BitMap

from shared.contracts.bitmaps import scope_digest, set_digest
from shared.contracts.serving import HeldDirective
from tests.unit.enforcement.scenario import (
    SETS,
    applied,
    assessment,
    at,
    core,
    delta,
    failed,
    feed,
    heartbeat,
    held_digest,
    of_type,
    to,
)


def started(*clusters: tuple[str, ...]):
    coordinator = core()
    assessed, chunks = assessment(deadline_s=60)
    commands, events = feed(coordinator, [*(heartbeat(c, *models) for c, *models in clusters), assessed, *chunks])
    return coordinator, assessed, commands, events


def state(coordinator, cluster: str, key=("D-1", 1, "restrict")) -> str:
    return coordinator.rollouts[key].clusters[cluster].state


def test_clusters_start_pending_and_progress_is_published() -> None:
    coordinator, _, _, events = started(("us-east", "fable-5"))
    assert state(coordinator, "us-east") == "pending"
    [progress] = of_type(events, "EnforcementProgressed")
    assert progress.clusters["us-east"].state == "pending" and progress.clusters["us-east"].attempts == 1


def test_an_ack_with_the_expected_digest_applies_and_measures_latency() -> None:
    coordinator, _, commands, _ = started(("us-east", "fable-5"))
    _, events = feed(coordinator, [applied("us-east", held_digest(commands))], now=at(2.5))
    assert state(coordinator, "us-east") == "applied"
    [enforced] = of_type(events, "DirectiveEnforced")
    assert enforced.ack_latency_s == {"us-east": 2.5}
    assert enforced.clusters["us-east"].acked_at == at(2.5)


def test_a_wrong_digest_keeps_the_cluster_pending_and_re_sends() -> None:
    coordinator, _, _, _ = started(("us-east", "fable-5"))
    _, events = feed(coordinator, [applied("us-east", "0" * 64)], now=at(1))
    track = coordinator.rollouts[("D-1", 1, "restrict")].clusters["us-east"]
    assert (track.state, track.reason) == ("pending", "digest mismatch")
    assert of_type(events, "DirectiveEnforced") == []
    resent = coordinator.tick(at(2)).commands
    assert to(resent, "us-east") and {c.event_id.endswith(":2") for c in resent} == {True}


def test_a_failed_command_is_re_sent_with_backoff() -> None:
    coordinator, _, _, _ = started(("us-east", "fable-5"))
    feed(coordinator, [failed("us-east", "disk full")], now=at(1))
    track = coordinator.rollouts[("D-1", 1, "restrict")].clusters["us-east"]
    assert (track.state, track.reason) == ("failed", "disk full")
    assert coordinator.tick(at(1.5)).commands == []
    assert to(coordinator.tick(at(2)).commands, "us-east")
    assert coordinator.tick(at(3)).commands == []  # next one waits twice as long
    assert to(coordinator.tick(at(4)).commands, "us-east")


def test_enforced_is_published_once_when_every_cluster_applied() -> None:
    coordinator, _, commands, _ = started(("us-east", "fable-5"), ("eu-west", "mythos-5"))
    _, events = feed(coordinator, [applied("us-east", held_digest(to(commands, "us-east")))])
    assert of_type(events, "DirectiveEnforced") == []
    ack = applied("eu-west", held_digest(to(commands, "eu-west")))
    _, events = feed(coordinator, [ack, ack, applied("us-east", held_digest(to(commands, "us-east")))])
    assert len(of_type(events, "DirectiveEnforced")) == 1


def test_a_silent_cluster_is_overdue_after_the_deadline_then_applied_on_a_late_ack() -> None:
    coordinator, _, commands, _ = started(("us-east", "fable-5"), ("eu-west", "mythos-5"))
    feed(coordinator, [applied("us-east", held_digest(to(commands, "us-east")))])
    assert coordinator.tick(at(59)).events == []
    outcome = coordinator.tick(at(60))
    [overdue] = of_type(outcome.events, "EnforcementOverdue")
    assert overdue.overdue_clusters == ["eu-west"] and state(coordinator, "eu-west") == "overdue"
    assert to(outcome.commands, "eu-west") and not to(outcome.commands, "us-east")
    later = coordinator.tick(at(60.5))
    assert of_type(later.events, "EnforcementOverdue") == [] and later.commands == []
    assert coordinator.tick(at(61)).commands == []
    assert to(coordinator.tick(at(62)).commands, "eu-west")  # re-sent with backoff
    _, events = feed(coordinator, [applied("eu-west", held_digest(to(commands, "eu-west")))], now=at(70))
    assert state(coordinator, "eu-west") == "applied"
    [enforced] = of_type(events, "DirectiveEnforced")
    assert enforced.ack_latency_s["eu-west"] == 70.0


def test_re_sends_back_off_up_to_the_cap() -> None:
    coordinator, _, _, _ = started(("eu-west", "mythos-5"))
    sent_at = [s for s in range(60, 120) if coordinator.tick(at(s)).commands]
    gaps = [b - a for a, b in pairwise(sent_at)]
    assert gaps[:4] == [2, 4, 8, 8]


def test_acks_for_unknown_or_older_revisions_are_ignored() -> None:
    coordinator = core()
    first, first_chunks = assessment(revision=1)
    second, second_chunks = assessment(revision=2)
    commands, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), first, *first_chunks, second, *second_chunks])
    digest = held_digest([c for c in commands if c.revision == 2])
    _, events = feed(coordinator, [applied("us-east", digest, revision=1), applied("us-east", digest, directive="X")])
    assert events == []
    assert state(coordinator, "us-east", ("D-1", 2, "restrict")) == "pending"


def test_an_older_revision_arriving_late_is_not_enforced() -> None:
    coordinator = core()
    second, second_chunks = assessment(revision=2)
    first, first_chunks = assessment(revision=1)
    commands, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), second, *second_chunks, first, *first_chunks])
    assert {c.revision for c in commands} == {2}


def test_lift_expects_the_digest_of_nothing_held_from_every_cluster_that_had_the_directive() -> None:
    coordinator, _, commands, _ = started(("us-east", "fable-5"), ("eu-west", "mythos-5"))
    feed(coordinator, [heartbeat("us-east", "other")])  # stopped serving fable-5 since: still told to lift
    lift, lift_chunks = assessment(action="lift")
    lifts, events = feed(coordinator, [lift, *lift_chunks], now=at(5))
    assert sorted((c.type, c.cluster_id) for c in lifts) == [("LiftCommand", "eu-west"), ("LiftCommand", "us-east")]
    [progress] = of_type(events, "EnforcementProgressed")
    assert progress.expected_digest == scope_digest({})
    assert {p.expected_digest for p in progress.clusters.values()} == {scope_digest({})}
    _, events = feed(coordinator, [applied(c, scope_digest({}), action="lift") for c in ("us-east", "eu-west")])
    [enforced] = of_type(events, "DirectiveEnforced")
    assert enforced.action == "lift" and enforced.digest == scope_digest({})
    assert not coordinator.rollouts[("D-1", 1, "restrict")].active
    assert ("D-1", 1, "restrict") not in coordinator.sets  # no longer needed for re-sends


def test_a_lifted_directive_is_no_longer_re_sent() -> None:
    coordinator, _, _, _ = started(("eu-west", "mythos-5"))
    lift, lift_chunks = assessment(action="lift")
    feed(coordinator, [lift, *lift_chunks], now=at(1))
    feed(coordinator, [applied("eu-west", scope_digest({}), action="lift")], now=at(2))
    assert coordinator.tick(at(100)).commands == []


def test_a_cluster_heard_of_later_gets_every_active_restriction_for_its_models() -> None:
    coordinator, assessed, _, _ = started(("us-east", "fable-5"))
    other, other_chunks = assessment({"mythos-5": BitMap([1, 2])}, directive="D-2")
    feed(coordinator, [other, *other_chunks])
    commands, events = feed(coordinator, [heartbeat("eu-west", "fable-5", "mythos-5")], now=at(30))
    assert {c.directive_id for c in commands} == {"D-1", "D-2"}
    assert held_digest([c for c in commands if c.directive_id == "D-1"]) == assessed.digest
    assert len(of_type(events, "EnforcementProgressed")) == 2
    again, _ = feed(coordinator, [heartbeat("eu-west", "fable-5", "mythos-5")], now=at(31))
    assert again == []


def test_a_delta_reaches_every_cluster_holding_the_directive_and_moves_only_serving_digests() -> None:
    coordinator, _, commands, _ = started(("us-east", "fable-5"), ("eu-west", "mythos-5"))
    feed(coordinator, [applied("us-east", held_digest(to(commands, "us-east")))])
    after = SETS["fable-5"] | BitMap([9000])
    sent, events = feed(coordinator, [delta(1, "fable-5", BitMap([9000]), BitMap(), after)], now=at(5))
    assert sorted((c.type, c.cluster_id) for c in sent) == [("DeltaCommand", "eu-west"), ("DeltaCommand", "us-east")]
    untouched = coordinator.rollouts[("D-1", 1, "restrict")].clusters["eu-west"]
    assert untouched.expected_digest == scope_digest({"mythos-5": set_digest(SETS["mythos-5"])})
    new_digest = scope_digest({"fable-5": set_digest(after)})
    track = coordinator.rollouts[("D-1", 1, "restrict")].clusters["us-east"]
    assert (track.state, track.expected_digest) == ("pending", new_digest)
    feed(coordinator, [applied("us-east", new_digest, action="delta")], now=at(6))
    assert track.state == "applied"
    resent, _ = feed(coordinator, [delta(1, "fable-5", BitMap([9000]), BitMap(), after)], now=at(7))
    assert resent == []  # same seq again: already applied


def test_a_delta_arriving_before_the_set_is_complete_is_folded_into_the_restriction() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    after = SETS["fable-5"] - BitMap([0])
    commands, _ = feed(
        coordinator,
        [
            heartbeat("us-east", "fable-5"),
            assessed,
            chunks[0],
            delta(1, "fable-5", BitMap(), BitMap([0]), after),
            *chunks[1:],
        ],
    )
    assert held_digest(commands) == scope_digest({"fable-5": set_digest(after)})
    assert {c.expected_digest for c in commands} == {held_digest(commands)}


def test_a_heartbeat_holding_the_expected_digest_counts_as_an_ack() -> None:
    coordinator, _, commands, _ = started(("us-east", "fable-5"))
    held = {"D-1": HeldDirective(revision=1, digest=held_digest(commands))}
    _, events = feed(coordinator, [heartbeat("us-east", "fable-5", held=held)], now=at(1))
    assert state(coordinator, "us-east") == "applied" and of_type(events, "DirectiveEnforced")


def test_a_cluster_whose_heartbeat_shows_another_digest_after_its_ack_is_drifted_and_re_sent() -> None:
    coordinator, _, commands, _ = started(("us-east", "fable-5"))
    expected = held_digest(to(commands, "us-east"))
    feed(coordinator, [applied("us-east", expected)], now=at(1))
    lost = heartbeat("us-east", "fable-5").model_copy(update={"occurred_at": at(2)})  # e.g. a forged lift took it
    resent, events = feed(coordinator, [lost], now=at(2))
    track = coordinator.rollouts[("D-1", 1, "restrict")].clusters["us-east"]
    assert track.state == "drifted" and track.reason.startswith("drift: holds nothing")
    assert held_digest(to(resent, "us-east")) == expected  # the right state, sent at once
    assert of_type(events, "EnforcementProgressed")[-1].clusters["us-east"].state == "drifted"  # on record
    feed(coordinator, [applied("us-east", expected)], now=at(3))
    assert state(coordinator, "us-east") == "applied"


def test_a_heartbeat_sent_before_the_ack_is_not_drift() -> None:
    coordinator, _, commands, _ = started(("us-east", "fable-5"))
    feed(coordinator, [applied("us-east", held_digest(to(commands, "us-east")))], now=at(5))
    earlier = heartbeat("us-east", "fable-5").model_copy(update={"occurred_at": at(4)})
    resent, _ = feed(coordinator, [earlier], now=at(6))
    assert resent == [] and state(coordinator, "us-east") == "applied"


def test_an_applied_cluster_acknowledging_another_digest_has_drifted_and_is_re_sent_at_once() -> None:
    coordinator, _, commands, _ = started(("us-east", "fable-5"))
    expected = held_digest(to(commands, "us-east"))
    feed(coordinator, [applied("us-east", expected)], now=at(1))
    resent, events = feed(coordinator, [applied("us-east", "a-wrong-set")], now=at(2))  # a validly signed wrong one
    assert state(coordinator, "us-east") == "drifted" and held_digest(to(resent, "us-east")) == expected
    assert of_type(events, "EnforcementProgressed")[-1].clusters["us-east"].reason.startswith("drift: holds a-wrong")
