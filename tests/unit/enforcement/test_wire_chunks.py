"""How sets become RestrictCommand chunks: same cut as the shared chunker, bounded size, encoded once."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from pyroaring import BitMap

from services.enforcement.cluster_commands import encoded_chunks, split
from services.enforcement.settings import EnforcementSettings
from shared.contracts.bitmaps import chunk_bitmap, decode_bitmap, set_digest
from tests.unit.enforcement.scenario import SETS, applied, assessment, at, core, delta, feed, heartbeat, held_digest, to


def sparse(count: int, seed: int = 3) -> BitMap:
    rng = np.random.default_rng(seed)
    return BitMap(np.unique(rng.integers(0, 2**32 - 1, size=count, dtype=np.uint32)))


def test_split_cuts_exactly_like_the_shared_chunker() -> None:
    for users in (BitMap(), BitMap([7]), BitMap(range(0, 10_000, 3)), sparse(5_000), BitMap([0, 2**32 - 1])):
        for per_chunk in (1, 7, 1_000, 50_000):
            assert split(users, per_chunk) == chunk_bitmap(users, per_chunk)


def test_chunks_stay_under_the_size_bound_and_cover_the_set_in_order() -> None:
    users = sparse(20_000)
    texts = encoded_chunks(users, ids_per_chunk=1_000_000, max_chars=8_000)
    assert len(texts) > 1 and max(map(len, texts)) <= 8_000
    parts = [decode_bitmap(t) for t in texts]
    assert BitMap.union(*parts) == users and sum(map(len, parts)) == len(users)
    assert all(a.max() < b.min() for a, b in pairwise(parts))


def test_dense_sets_travel_in_few_chunks() -> None:
    assert len(encoded_chunks(BitMap(range(3_000_000)), ids_per_chunk=1_000_000, max_chars=1_500_000)) == 3


def test_every_cluster_gets_the_same_chunks_and_a_re_send_after_a_delta_carries_the_new_set() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    commands, _ = feed(
        coordinator, [heartbeat("us-east", "fable-5"), heartbeat("eu-west", "fable-5"), assessed, *chunks]
    )
    assert [c.users for c in to(commands, "us-east")] == [c.users for c in to(commands, "eu-west")]
    after = SETS["fable-5"] | BitMap([9000])
    feed(coordinator, [delta(1, "fable-5", BitMap([9000]), BitMap(), after)], now=at(1))
    feed(coordinator, [applied("us-east", "0" * 64)], now=at(2))  # a wrong digest: re-sent
    resent = to(coordinator.tick(at(10)).commands, "us-east")
    assert BitMap.union(*[decode_bitmap(c.users) for c in resent]) == after
    assert held_digest(resent) == resent[0].expected_digest
    assert set_digest(after) in coordinator.rollouts[("D-1", 1, "restrict")].model_digests.values()


def test_the_directive_s_stale_rule_travels_with_every_chunk() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    strict = assessed.model_copy(update={"scope": assessed.scope.model_copy(update={"on_stale": "deny_models"})})
    commands, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), strict, *chunks])
    assert commands and {c.on_stale for c in commands} == {"deny_models"}


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
    with pytest.raises(ValueError, match="chunk_chars"):
        EnforcementSettings(chunk_chars=2_090_000, kafka={"max_request_bytes": 2 * 1024 * 1024})
    assert EnforcementSettings(chunk_chars=1_500_000).chunk_chars == 1_500_000
