"""The synthetic population: deterministic, skewed like a real user base, valid on the wire."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from devtools.registry.census import census
from devtools.registry.demography import COUNTRIES, EMPLOYEE, MODELS, US
from devtools.registry.population import encoded, generate, records
from shared.contracts.countries import check_country
from shared.contracts.users import UserUpserted, user_key

COLUMNS = ("user_id", "nat1", "nat2", "nat_unknown", "residence", "account_type", "organisation", "entitlements")


@pytest.fixture(scope="module")
def pop():
    return generate(100_000, seed=7)


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(getattr(a, c), getattr(b, c)) for c in COLUMNS)


def test_same_seed_gives_the_same_population(pop) -> None:
    assert same(generate(100_000, seed=7), pop)


def test_another_seed_gives_another_population(pop) -> None:
    assert not np.array_equal(generate(100_000, seed=8).nat1, pop.nat1)


def test_a_smaller_population_is_a_prefix_of_a_larger_one(pop) -> None:
    small = generate(70_000, seed=7)
    assert all(np.array_equal(getattr(small, c), getattr(pop, c)[:70_000]) for c in COLUMNS)


def test_ids_are_consecutive_from_first_id() -> None:
    pop = generate(1000, seed=1, first_id=5_000_000)
    assert pop.user_id.dtype == np.uint32
    assert pop.user_id.tolist() == list(range(5_000_000, 5_001_000))


@pytest.mark.parametrize(
    ("args", "field"),
    [((-1, 1, 1), "users"), ((10, -1, 1), "seed"), ((10, 1, -1), "first_id"), ((10, 1, 2**32 - 5), "first_id")],
)
def test_bad_arguments_are_rejected_naming_the_field(args, field) -> None:
    with pytest.raises(ValueError, match=field):
        generate(*args)


def test_proportions_look_like_a_real_user_base(pop) -> None:
    c = census(pop)
    assert 0.025 <= c.dual / c.users <= 0.035
    assert 0.015 <= c.unknown_nationality / c.users <= 0.025
    assert 0.003 <= c.unknown_residence / c.users <= 0.008
    assert 0.015 <= c.account_types["employee"] / c.users <= 0.025
    assert 0.83 <= c.account_types["consumer"] / c.users <= 0.87
    assert 0.11 <= c.account_types["enterprise_member"] / c.users <= 0.15
    assert 0.06 <= c.living_abroad / c.users <= 0.12
    assert len(c.nationalities) >= 30 and len(c.residences) >= 30


def test_us_leads_nationalities_then_a_long_tail(pop) -> None:
    ranked = list(census(pop).nationalities)
    us_share = census(pop).nationalities["US"] / len(pop)
    assert 0.28 <= us_share <= 0.36
    assert ranked[0] == "US" and set(ranked[1:4]) <= {"IN", "BR", "GB", "DE"}


def test_country_table_has_enough_valid_codes() -> None:
    assert len(COUNTRIES) >= 40 and len(set(COUNTRIES)) == len(COUNTRIES)
    assert [check_country(code) for code in COUNTRIES] == list(COUNTRIES)


def test_dual_nationals_include_us_pairs_and_non_us_pairs(pop) -> None:
    dual = pop.nat2 >= 0
    with_us = dual & ((pop.nat1 == US) | (pop.nat2 == US))
    assert with_us.sum() > 100
    assert (dual & ~with_us).sum() > 100
    assert not (dual & (pop.nat1 == pop.nat2)).any()


def test_unknown_nationality_means_no_country_recorded(pop) -> None:
    assert (pop.nat1[pop.nat_unknown] == -1).all() and (pop.nat2[pop.nat_unknown] == -1).all()
    assert (pop.nat1[~pop.nat_unknown] >= 0).all()


def test_some_employees_are_not_us_nationals(pop) -> None:
    employees = (pop.account_type == EMPLOYEE) & ~pop.nat_unknown
    non_us = employees & (pop.nat1 != US) & (pop.nat2 != US)
    assert non_us.sum() >= 0.2 * employees.sum()
    assert (pop.organisation[pop.account_type == EMPLOYEE] == 0).all()


def test_foreign_nationals_live_in_the_us(pop) -> None:
    assert census(pop).foreign_nationals_in_us > 500


def test_only_members_and_employees_belong_to_an_organisation(pop) -> None:
    assert ((pop.organisation >= 0) == (pop.account_type != 0)).all()


def test_every_user_has_an_entitlement_and_frontier_models_are_common(pop) -> None:
    assert (pop.entitlements > 0).all()
    for bit in (0, 1):  # fable-5, mythos-5
        assert 0.4 <= np.mean(pop.entitlements >> bit & 1) <= 0.6


def test_every_record_is_a_valid_user_upserted() -> None:
    pop = generate(20_000, seed=3, first_id=100)
    users = [UserUpserted.model_validate(r) for r in records(pop, 0, len(pop))]
    assert [u.user_id for u in users] == list(range(100, 20_100))
    assert all(u.email == f"user{u.user_id}@example.com" and u.producer == "registry" for u in users)
    assert all(set(u.entitlements) <= set(MODELS) and u.entitlements for u in users)
    organisations = {u.organisation for u in users if u.account_type == "employee"}
    assert organisations == {"org-countermand"}
    assert all(u.organisation.startswith("org-") for u in users if u.account_type == "enterprise_member")
    assert all(u.organisation is None for u in users if u.account_type == "consumer")


def test_records_follow_the_columns() -> None:
    pop = generate(5_000, seed=5)
    for i, record in enumerate(records(pop, 0, len(pop))):
        nationalities = record["nationalities"]
        if pop.nat_unknown[i]:
            assert nationalities is None
        else:
            expected = [COUNTRIES[pop.nat1[i]]] + ([COUNTRIES[pop.nat2[i]]] if pop.nat2[i] >= 0 else [])
            assert nationalities == expected
        assert record["residence"] == (COUNTRIES[pop.residence[i]] if pop.residence[i] >= 0 else None)


def test_encoded_payloads_are_the_records_with_user_keys() -> None:
    pop = generate(20_000, seed=11)
    pairs = encoded(pop, 500, 20_000, event_prefix="run-1:")
    expected = records(pop, 500, 20_000, event_prefix="run-1:")
    assert [orjson.loads(value) for _, value in pairs] == expected
    assert [key for key, _ in pairs] == [user_key(r["user_id"]) for r in expected]
    assert UserUpserted.model_validate_json(pairs[0][1]).event_id == "run-1:501"


def test_records_reject_a_window_outside_the_population() -> None:
    pop = generate(10, seed=1)
    with pytest.raises(ValueError, match="start/stop"):
        records(pop, 5, 11)
    with pytest.raises(ValueError, match="event_prefix"):
        encoded(pop, 0, 1, event_prefix='bad"prefix')
