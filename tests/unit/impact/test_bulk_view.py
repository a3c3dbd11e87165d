"""The view filled straight from registry columns, and the fast set building, agree with the record path."""

from __future__ import annotations

import array
from dataclasses import dataclass

import numpy as np
import pytest
from pyroaring import BitMap

from devtools.registry import population as registry
from devtools.registry.view import coded_users
from devtools.scenarios import MISSION, THREE_CLAUSES
from services.impact.affected import assess, bitmap_of, rows_bitmap, rows_digest
from services.impact.registry_view import RegistryView
from services.impact.selection import BLOCK, evaluate, membership
from services.impact.user_columns import ACCOUNT_TYPES, COUNTRIES, Population
from shared.contracts.bitmaps import bitmap_ids, set_digest
from tests.unit.impact.population_builder import scope, user

SCOPES = [
    MISSION,
    THREE_CLAUSES,
    scope({"kind": "residence", "any_of": ["US", "DE"]}, unknown="allow"),
    scope({"kind": "organisation", "any_of": ["org-countermand", "org-00001", "org-00002", "org-99999"]}),
    scope({"kind": "nationality", "any_of": ["IN", "BR", "GB", "DE", "FR", "JP", "CA", "MX", "ID", "KR"]}),
    scope({"kind": "not", "of": {"kind": "entitlement", "any_of": ["lyric-4", "sonnet-3"]}}, ("lyric-4",)),
]


@dataclass
class Record:
    key: bytes
    value: bytes
    offset: int
    partition: int = 0
    topic: str = "identity.users.v1"


def record_view(pop: registry.Population) -> Population:
    view = RegistryView()
    view.apply([Record(key, value, i) for i, (key, value) in enumerate(registry.encoded(pop, 0, len(pop)))])
    return view.population


def bulk_view(pop: registry.Population) -> Population:
    view = Population()
    view.load(coded_users(pop))
    return view


def ids_bitmap(ids: np.ndarray) -> BitMap:
    values = array.array("I")
    values.frombytes(ids.astype(np.uint32).tobytes())
    return BitMap(values)


@pytest.mark.parametrize("directive_scope", SCOPES, ids=lambda s: s.selector.kind)
def test_a_bulk_loaded_view_assesses_like_the_view_built_record_by_record(directive_scope) -> None:
    pop = registry.generate(3_000, seed=5, first_id=10)
    by_records, by_columns = assess(record_view(pop), directive_scope), assess(bulk_view(pop), directive_scope)
    assert by_columns.by_model == by_records.by_model
    assert by_columns.users > 0
    assert (by_columns.digest, by_columns.unknown_only) == (by_records.digest, by_records.unknown_only)
    assert (by_columns.by_country, by_columns.by_account_type) == (by_records.by_country, by_records.by_account_type)


def test_a_bulk_load_replaces_what_records_said_about_the_same_users() -> None:
    pop = registry.generate(50, seed=3, first_id=1)
    view = Population()
    view.upsert([user(i, ["US"], "US", entitlements=("fable-5", "lyric-4")) for i in range(1, 51)])
    view.load(coded_users(pop))
    assert assess(view, MISSION).by_model == assess(bulk_view(pop), MISSION).by_model
    lyric = scope({"kind": "entitlement", "any_of": ["lyric-4"]})
    assert assess(view, lyric).by_model == assess(bulk_view(pop), lyric).by_model


def test_a_view_rebuilt_from_its_columns_assesses_the_same() -> None:
    view = bulk_view(registry.generate(2_000, seed=8))
    rebuilt = Population.from_columns(view.columns())
    for directive_scope in SCOPES:
        assert assess(rebuilt, directive_scope).digest == assess(view, directive_scope).digest


@pytest.mark.parametrize("length", [0, 1, 65_535, 65_536, 65_537, 200_000])
@pytest.mark.parametrize("density", [0.0, 0.001, 0.0625, 0.5, 1.0])
def test_sets_built_from_a_mask_hold_exactly_its_rows(length: int, density: float) -> None:
    mask = np.random.default_rng(length).random(length) < density
    expected = ids_bitmap(np.flatnonzero(mask))
    assert rows_bitmap(mask) == expected
    assert rows_digest(mask) == set_digest(expected)


def test_containers_at_the_array_limit_are_built_exactly() -> None:
    mask = np.zeros(3 * 65_536, bool)
    mask[:4096] = True  # an array container at its limit
    mask[65_536 : 65_536 + 4097] = True  # the smallest bitset container
    mask[2 * 65_536 + 1 :: 16] = True  # 4096 spread ids
    assert rows_bitmap(mask) == ids_bitmap(np.flatnonzero(mask))


@pytest.mark.parametrize("first", [0, 7, 65_536, 100_000, 2**32 - 70_000])
def test_sets_of_a_whole_id_range_are_shifted_to_those_ids(first: int) -> None:
    ids = np.arange(first, first + 66_000, dtype=np.int64)
    mask = np.random.default_rng(first).random(len(ids)) < 0.3
    assert bitmap_of(mask, ids) == ids_bitmap(ids[mask])


def test_assessed_digests_are_the_shared_set_digests() -> None:
    affected = assess(bulk_view(registry.generate(5_000, seed=2)), MISSION)
    assert affected.model_digests == {m: set_digest(users) for m, users in affected.by_model.items()}


@pytest.fixture(scope="module")
def large_view() -> Population:
    return bulk_view(registry.generate(3 * BLOCK + 1_000, seed=4))  # several blocks: evaluated on threads


@pytest.mark.parametrize("directive_scope", SCOPES[:3], ids=lambda s: s.selector.kind)
def test_blockwise_evaluation_equals_one_evaluation_of_every_row(large_view, directive_scope) -> None:
    columns = large_view.columns()
    true, unknown = evaluate(directive_scope.selector, columns)
    restricted = unknown & columns.present if directive_scope.unknown_attribute == "restrict" else False
    expected = (true & columns.present) | restricted
    member = membership(columns, directive_scope)
    assert np.array_equal(member.affected, expected)
    assert np.array_equal(member.unknown_only, expected & ~(true & columns.present))


def test_breakdowns_over_several_blocks_count_every_affected_user(large_view) -> None:
    affected = assess(large_view, MISSION)
    rows = bitmap_ids(affected.by_model["fable-5"]).astype(np.int64)
    columns = large_view.columns(rows)
    countries = np.bincount(columns.residence.astype(np.int64) + 1, minlength=len(COUNTRIES) + 1)
    assert affected.by_country == {("??", *COUNTRIES)[i]: int(n) for i, n in enumerate(countries) if n}
    accounts = np.bincount(columns.account_type, minlength=len(ACCOUNT_TYPES))
    assert affected.by_account_type == {ACCOUNT_TYPES[i]: int(n) for i, n in enumerate(accounts) if n}
    assert sum(affected.by_country.values()) == affected.users == len(rows)
    assert affected.model_digests == {m: set_digest(users) for m, users in affected.by_model.items()}
