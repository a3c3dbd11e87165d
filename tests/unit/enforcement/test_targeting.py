"""Which clusters get which part of an affected set, and what digest each must acknowledge."""

from __future__ import annotations

import pytest
from pyroaring import BitMap

from shared.contracts.bitmaps import scope_digest, set_digest
from shared.contracts.serving import HeldDirective
from tests.unit.enforcement.scenario import (
    SETS,
    T0,
    assessment,
    at,
    core,
    feed,
    heartbeat,
    held_digest,
    of_type,
    placed,
    to,
    users_sent,
)


def test_only_clusters_serving_an_affected_model_are_sent_commands() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    commands, _ = feed(
        coordinator,
        [
            heartbeat("us-east", "fable-5", "other"),
            heartbeat("eu-west", "mythos-5"),
            heartbeat("ap-south", "other"),
            assessed,
            *chunks,
        ],
    )
    assert {c.cluster_id for c in commands} == {"us-east", "eu-west"}
    assert {r.model for c in placed(to(commands, "us-east")) for r in c.sets} == {"fable-5"}
    assert {r.model for c in placed(to(commands, "eu-west")) for r in c.sets} == {"mythos-5"}


def test_each_cluster_expects_the_scope_digest_of_the_models_it_serves() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    commands, _ = feed(
        coordinator, [heartbeat("us-east", "fable-5"), heartbeat("eu-west", "fable-5", "mythos-5"), assessed, *chunks]
    )
    fable_only = scope_digest({"fable-5": set_digest(SETS["fable-5"])})
    assert {c.expected_digest for c in to(commands, "us-east")} == {fable_only}
    assert {c.expected_digest for c in to(commands, "eu-west")} == {assessed.digest}
    assert held_digest(to(commands, "us-east")) == fable_only
    assert held_digest(to(commands, "eu-west")) == assessed.digest


def test_one_command_per_cluster_references_each_served_model_s_chunks_in_order() -> None:
    coordinator = core(ids_per_chunk=100)
    assessed, chunks = assessment()
    commands, _ = feed(coordinator, [heartbeat("eu-west", "fable-5", "mythos-5"), assessed, *chunks])
    [mine] = placed(to(commands, "eu-west"))
    assert (mine.chunk, mine.chunks, mine.model, mine.users) == (0, 1, None, None)
    assert [(r.model, len(r.offsets)) for r in mine.sets] == [("fable-5", 5), ("mythos-5", 1)]
    assert all(r.offsets == sorted(r.offsets) for r in mine.sets)
    assert users_sent(mine) == SETS


def test_an_empty_model_set_is_one_empty_chunk() -> None:
    coordinator = core()
    assessed, chunks = assessment({"fable-5": BitMap(), "mythos-5": BitMap([7])})
    commands, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), assessed, *chunks])
    assert [users_sent(c) for c in commands] == [{"fable-5": BitMap()}]


def test_nothing_is_sent_until_every_chunk_arrived() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    assert len(chunks) > 1
    commands, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), assessed, *chunks[:-1]])
    assert commands == []
    commands, _ = feed(coordinator, [chunks[-1]])
    assert to(commands, "us-east")


def test_chunks_arriving_before_their_assessment_are_held() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    commands, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), *reversed(chunks), assessed])
    assert held_digest(commands) == scope_digest({"fable-5": set_digest(SETS["fable-5"])})


def test_redelivered_assessment_and_chunks_send_nothing_again() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    first, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), assessed, *chunks])
    again, events = feed(coordinator, [assessed, *chunks])
    assert first and again == [] and events == []


def test_without_any_serving_cluster_the_directive_is_enforced_at_once() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    commands, events = feed(coordinator, [heartbeat("ap-south", "other"), assessed, *chunks])
    assert commands == []
    [enforced] = of_type(events, "DirectiveEnforced")
    assert enforced.clusters == {} and enforced.digest == assessed.digest


def test_during_the_heartbeat_grace_a_complete_assessment_waits_for_clusters() -> None:
    coordinator = core(hold_until=at(3))
    assessed, chunks = assessment()
    commands, _ = feed(coordinator, [assessed, *chunks], now=T0)
    assert commands == []
    feed(coordinator, [heartbeat("us-east", "fable-5")], now=at(1))
    assert to(coordinator.tick(at(3)).commands, "us-east")


def test_an_assessment_without_a_digest_for_a_scope_model_is_rejected_naming_the_field() -> None:
    coordinator = core()
    assessed, _ = assessment()
    broken = assessed.model_copy(update={"model_digests": {"fable-5": "ab"}})
    with pytest.raises(ValueError, match="model_digests"):
        coordinator.on_assessed(broken, assessed.occurred_at)
    assert coordinator.assemblies == {}


def test_a_corrupt_chunk_is_rejected_and_nothing_is_kept() -> None:
    coordinator = core()
    _, chunks = assessment()
    with pytest.raises(ValueError, match="bitmap"):
        coordinator.on_chunk(chunks[0].model_copy(update={"users": "bm90IGEgYml0bWFw"}), chunks[0].occurred_at)
    assert coordinator.assemblies == {}


def test_the_cluster_registry_keeps_region_models_and_held_digests_from_the_latest_heartbeat() -> None:
    coordinator = core()
    first = heartbeat("us-east", "mythos-5", "fable-5").model_copy(update={"region": "us-east-1"})
    held = {"D-9": HeldDirective(revision=2, digest="ab" * 32)}
    later = first.model_copy(update={"held": held, "models": ["fable-5"]})
    assert coordinator.on_heartbeat(first, T0).clusters == {"us-east"}
    known = coordinator.clusters["us-east"]
    assert (known.region, known.models, known.held) == ("us-east-1", ["fable-5", "mythos-5"], {})
    assert coordinator.on_heartbeat(first, at(1)).clusters == set()  # nothing new: nothing to persist
    assert coordinator.on_heartbeat(later, at(2)).clusters == {"us-east"}
    assert coordinator.clusters["us-east"].held == held and coordinator.clusters["us-east"].models == ["fable-5"]


def test_progress_names_the_models_each_cluster_serves() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    _, events = feed(
        coordinator, [heartbeat("us-east", "fable-5"), heartbeat("eu-west", "fable-5", "mythos-5"), assessed, *chunks]
    )
    progress = [e for e in events if e.type == "EnforcementProgressed"][-1]
    assert {c: p.models for c, p in progress.clusters.items()} == {
        "us-east": ["fable-5"],
        "eu-west": ["fable-5", "mythos-5"],
    }
