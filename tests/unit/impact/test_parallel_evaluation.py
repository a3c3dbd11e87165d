"""Evaluation on several threads equals the serial one exactly, and set digests kept per range (computed once
per block, combined, then re-hashed only where a delta touches) always equal the shared set digest."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from devtools.registry import population as registry
from devtools.registry.view import coded_users
from devtools.scenarios import MISSION
from services.impact.affected import assess, rows_bitmap, rows_digest, rows_range_digests
from services.impact.directives import Directives
from services.impact.losing import losing_by_model
from services.impact.selection import BLOCK, membership
from services.impact.user_columns import Population
from shared.contracts.bitmaps import SetDigest, set_digest
from tests.unit.impact.population_builder import scope, user
from tests.unit.impact.test_oracle import selectors

RANGE = 1 << 16


def generated(users: int, seed: int) -> Population:
    view = Population(capacity=2)
    view.load(coded_users(registry.generate(users, seed=seed, first_id=1)))
    return view


@cache
def several_blocks() -> Population:
    """A generated registry over several evaluation blocks, the last one partial (shared: never changed)."""
    return generated(3 * BLOCK + 12_345, seed=16)


@settings(max_examples=25, deadline=None)
@given(selectors, st.sampled_from(["restrict", "allow"]))
def test_parallel_evaluation_equals_the_serial_one(selector, unknown) -> None:
    directive_scope = scope(selector, ("fable-5", "mythos-5"), unknown=unknown)
    serial = assess(several_blocks(), directive_scope, workers=1)
    parallel = assess(several_blocks(), directive_scope, workers=2)
    assert parallel.by_model == serial.by_model
    assert parallel.model_digests == serial.model_digests == {m: set_digest(u) for m, u in serial.by_model.items()}
    assert parallel.digest == serial.digest
    assert (parallel.unknown_only, parallel.by_country, parallel.by_account_type) == (
        serial.unknown_only,
        serial.by_country,
        serial.by_account_type,
    )
    columns = several_blocks().columns()
    assert np.array_equal(
        membership(columns, directive_scope, 2).affected, membership(columns, directive_scope, 1).affected
    )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 5).map(lambda n: n * RANGE),
    st.integers(1, 4 * RANGE + 500),
    st.floats(0.0, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_range_digests_of_a_mask_block_are_those_of_its_ids(first_row, rows, density, seed) -> None:
    mask = np.random.default_rng(seed).random(rows) < density
    ids = BitMap((np.flatnonzero(mask) + first_row).astype(np.uint32))
    assert SetDigest.from_ranges(rows_range_digests(mask, first_row)).ranges == SetDigest.of(ids).ranges
    assert SetDigest.from_ranges(rows_range_digests(mask, first_row)).hexdigest() == set_digest(ids)


def test_a_block_not_on_a_range_boundary_is_refused() -> None:
    with pytest.raises(ValueError, match="range boundary"):
        rows_range_digests(np.ones(10, bool), 100)


@pytest.mark.parametrize("density", [0.0, 0.001, 0.3, 0.999, 1.0])
def test_the_mask_digest_on_one_or_two_threads_is_the_set_digest(density: float) -> None:
    mask = np.random.default_rng(3).random(2 * BLOCK + 777) < density
    expected = set_digest(rows_bitmap(mask))
    assert rows_digest(mask, workers=1) == rows_digest(mask, workers=2) == expected


def test_registry_deltas_carry_the_digest_of_the_set_they_leave_for_each_model() -> None:
    view = generated(2 * BLOCK + 99, seed=17)
    affected = assess(view, MISSION)
    book = Directives()
    book.activate("D1", 1, MISSION, affected.by_model, affected.set_digests)
    rng = np.random.default_rng(5)
    for _ in range(6):
        ids = np.unique(rng.integers(1, 2 * BLOCK, size=40))
        covered = book.active["D1"].sets["fable-5"]
        # covered users become US nationals (they leave the set), the others foreign nationals (they join it)
        view.upsert([user(row, ["US"] if row in covered else ["DE"]) for row in ids.tolist()])
        deltas = book.deltas(view, ids)
        assert {d.model for d in deltas} == {"fable-5", "mythos-5"}
        for delta in deltas:
            assert delta.model_digest == set_digest(book.active["D1"].sets[delta.model])
    active = book.active["D1"]
    assert {m: active.digest(m) for m in active.sets} == {m: set_digest(s) for m, s in active.sets.items()}


def test_a_delta_on_one_model_leaves_the_digest_of_another_model_sharing_its_set_alone() -> None:
    affected = assess(several_blocks(), MISSION)
    book = Directives()
    book.activate("D1", 1, MISSION, affected.by_model, affected.set_digests)
    active = book.active["D1"]
    mythos_before = active.digest("mythos-5")
    active.apply("fable-5", BitMap([5 * BLOCK]), BitMap([active.sets["fable-5"].min()]))
    assert active.digest("mythos-5") == mythos_before == set_digest(active.sets["mythos-5"])
    assert active.digest("fable-5") == set_digest(active.sets["fable-5"]) != mythos_before


def test_a_directive_recovered_without_digests_hashes_its_sets_when_first_needed() -> None:
    users = BitMap(range(10, 200_000, 3))
    book = Directives()
    book.activate("D1", 1, MISSION, {"fable-5": users})  # as a restart rebuilds it from the impact topic
    active = book.active["D1"]
    active.apply("fable-5", BitMap([7]), BitMap([10]))
    assert active.digest("fable-5") == set_digest((users - BitMap([10])) | BitMap([7]))


def test_deltas_change_the_directive_own_sets_never_the_assessment_it_was_activated_from() -> None:
    affected = assess(several_blocks(), MISSION)
    before = {m: BitMap(users) for m, users in affected.by_model.items()}
    book = Directives()
    book.activate("D1", 1, MISSION, affected.by_model, affected.set_digests)
    book.active["D1"].apply("fable-5", BitMap([7 * BLOCK]), BitMap([before["fable-5"].min()]))
    assert affected.by_model == before
    assert affected.model_digests == {m: set_digest(users) for m, users in before.items()}


@settings(max_examples=25, deadline=None)
@given(selectors, st.sampled_from(["restrict", "allow"]))
def test_losing_counts_made_in_the_evaluation_pass_equal_losing_by_model(selector, unknown) -> None:
    directive_scope = scope(selector, ("fable-5", "mythos-5", "lyric-4"), unknown=unknown)
    for workers in (1, 2):
        affected = assess(several_blocks(), directive_scope, workers=workers)
        assert affected.losing == losing_by_model(several_blocks(), affected.by_model)
