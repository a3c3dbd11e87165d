"""How sets reach clusters: one copy per (revision, model, version) on the sets topic, referenced by every command."""

from __future__ import annotations

import pytest
from pyroaring import BitMap

from services.enforcement.settings import EnforcementSettings
from shared.contracts.bitmaps import set_digest
from tests.unit.enforcement.scenario import (
    SETS,
    applied,
    assessment,
    at,
    core,
    delta,
    feed,
    heartbeat,
    held_digest,
    placed,
    sets_topic,
    to,
    users_sent,
)


def test_every_cluster_references_the_one_copy_published_of_each_set() -> None:
    coordinator = core(ids_per_chunk=100)
    assessed, chunks = assessment()
    clusters = ("us-east", "eu-west", "ap-south")
    commands, _ = feed(coordinator, [*(heartbeat(c, "fable-5", "mythos-5") for c in clusters), assessed, *chunks])
    sent = placed(commands)
    assert len(sent) == 3 and {c.cluster_id for c in sent} == set(clusters)
    assert len({tuple(ref.offsets) for c in sent for ref in c.sets if ref.model == "fable-5"}) == 1
    topic = sets_topic(coordinator)
    assert len(topic.records) == 5 + 1  # fable-5 in five chunks of 100 ids, mythos-5 in one: published once
    assert users_sent(sent[0]) == SETS
    assert {c.expected_digest for c in sent} == {held_digest(sent)} == {assessed.digest}


def test_a_re_send_reuses_the_copy_and_a_delta_makes_a_new_version_published_once() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    commands, _ = feed(
        coordinator, [heartbeat("us-east", "fable-5"), heartbeat("eu-west", "fable-5"), assessed, *chunks]
    )
    placed(commands)
    topic = sets_topic(coordinator)
    first = len(topic.records)
    feed(coordinator, [applied("us-east", "0" * 64)], now=at(2))  # a wrong digest: re-sent
    resent = placed(to(coordinator.tick(at(10)).commands, "us-east"))
    assert resent and len(topic.records) == first  # the same copy, referenced again
    after = SETS["fable-5"] | BitMap([10 << 16])  # an eleventh range
    feed(coordinator, [delta(1, "fable-5", BitMap([10 << 16]), BitMap(), after)], now=at(11))
    feed(coordinator, [applied("us-east", "0" * 64), applied("eu-west", "0" * 64)], now=at(12))
    again = placed(coordinator.tick(at(30)).commands)
    versions = {ref.version for c in again if c.type == "RestrictCommand" for ref in c.sets}
    assert versions == {1} and len({c.cluster_id for c in again}) == 2
    assert len(topic.records) == first + 6  # version 1 (501 ids) of fable-5 published once for both clusters
    assert users_sent(again[0]) == {"fable-5": after}
    assert held_digest([again[0]]) == again[0].expected_digest
    assert set_digest(after) in coordinator.rollouts[("D-1", 1, "restrict")].model_digests.values()


def test_the_directive_s_stale_rule_travels_with_every_command() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    strict = assessed.model_copy(update={"scope": assessed.scope.model_copy(update={"on_stale": "deny_models"})})
    commands, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), strict, *chunks])
    assert commands and {c.on_stale for c in placed(commands)} == {"deny_models"}


def test_an_amendment_s_difference_chunks_are_ignored_and_the_whole_set_is_sent() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    extra = chunks[0].model_copy(
        update={"chunk": len(chunks), "chunks": len(chunks) + 1, "part": "added", "users": chunks[0].users}
    )
    commands, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), assessed, extra, *chunks])
    assert held_digest(commands) == commands[0].expected_digest
    assert coordinator.assemblies == {}


def test_a_chunk_size_that_cannot_fit_a_kafka_request_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="chunk_bytes"):
        EnforcementSettings(chunk_bytes=2_090_000, kafka={"max_request_bytes": 2 * 1024 * 1024})
    assert EnforcementSettings(chunk_bytes=1_500_000).chunk_bytes == 1_500_000
