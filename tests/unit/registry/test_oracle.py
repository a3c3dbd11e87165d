"""The brute-force selector oracle: three-valued logic, unknown attributes, employees included."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from devtools.registry.demography import US
from devtools.registry.oracle import affected_users, evaluate
from devtools.registry.population import generate, records
from shared.contracts.directives import DirectiveScope, Selector
from shared.contracts.users import UserUpserted


def user(
    uid: int,
    nationalities: list[str] | None,
    residence: str | None = "US",
    account: str = "consumer",
    organisation: str | None = None,
    entitlements: tuple[str, ...] = ("fable-5",),
) -> dict:
    return UserUpserted(
        producer="test",
        user_id=uid,
        email=f"u{uid}@example.com",
        nationalities=nationalities,
        residence=residence,
        account_type=account,
        organisation=organisation,
        entitlements=list(entitlements),
    ).model_dump()


AMERICAN = user(1, ["US"])
DUAL_US_IE = user(2, ["IE", "US"], residence="IE")
GERMAN_IN_US = user(3, ["DE"])
UNKNOWN_NATIONALITY = user(4, None)
INDIAN_EMPLOYEE = user(
    5, ["IN"], account="employee", organisation="org-countermand", entitlements=("fable-5", "mythos-5")
)
UNKNOWN_RESIDENCE = user(
    6, ["FR"], residence=None, account="enterprise_member", organisation="org-00042", entitlements=("sonnet-3",)
)
EVERYONE = [AMERICAN, DUAL_US_IE, GERMAN_IN_US, UNKNOWN_NATIONALITY, INDIAN_EMPLOYEE, UNKNOWN_RESIDENCE]
FOREIGN = {"kind": "foreign_national", "home_country": "US"}

# Clauses as seen by UNKNOWN_NATIONALITY (a US-resident consumer entitled to fable-5).
CLAUSE = {
    "true": {"kind": "residence", "any_of": ["US"]},
    "false": {"kind": "account_type", "any_of": ["employee"]},
    "unknown": FOREIGN,
}


def evaluate_dict(selector: dict, record: dict) -> bool | None:
    return evaluate(TypeAdapter(Selector).validate_python(selector), record)


def test_everyone_matches_every_user() -> None:
    assert affected_users({"kind": "everyone"}, EVERYONE) == {1, 2, 3, 4, 5, 6}


def test_dual_us_national_is_not_a_foreign_national() -> None:
    assert evaluate_dict(FOREIGN, DUAL_US_IE) is False
    assert 2 not in affected_users(FOREIGN, EVERYONE)


def test_foreign_nationals_include_our_own_employees_and_residents() -> None:
    assert affected_users(FOREIGN, EVERYONE, "allow") == {3, 5, 6}


def test_unknown_nationality_is_restricted_by_default_and_allowed_on_request() -> None:
    assert 4 in affected_users(FOREIGN, EVERYONE)
    assert 4 not in affected_users(FOREIGN, EVERYONE, unknown_attribute="allow")


def test_unknown_residence_follows_the_unknown_rule() -> None:
    in_us = {"kind": "residence", "any_of": ["US"]}
    assert affected_users(in_us, EVERYONE, "restrict") == {1, 3, 4, 5, 6}
    assert affected_users(in_us, EVERYONE, "allow") == {1, 3, 4, 5}


def test_nationality_matches_any_held_nationality() -> None:
    assert affected_users({"kind": "nationality", "any_of": ["IE", "IN"]}, EVERYONE, "allow") == {2, 5}


def test_account_type_organisation_and_entitlement_are_always_known() -> None:
    assert affected_users({"kind": "account_type", "any_of": ["employee"]}, EVERYONE) == {5}
    assert affected_users({"kind": "organisation", "any_of": ["org-00042"]}, EVERYONE) == {6}
    assert affected_users({"kind": "organisation", "any_of": ["org-countermand"]}, EVERYONE) == {5}
    assert affected_users({"kind": "entitlement", "any_of": ["mythos-5", "sonnet-3"]}, EVERYONE) == {5, 6}


def test_not_keeps_unknown_unknown() -> None:
    not_foreign = {"kind": "not", "of": FOREIGN}
    assert evaluate_dict(not_foreign, UNKNOWN_NATIONALITY) is None
    assert affected_users(not_foreign, EVERYONE, "allow") == {1, 2}
    assert affected_users(not_foreign, EVERYONE, "restrict") == {1, 2, 4}


@pytest.mark.parametrize(
    ("clauses", "expected"), [(["true", "unknown"], None), (["false", "unknown"], False), (["true", "true"], True)]
)
def test_all_of_is_false_on_any_false_else_unknown_on_any_unknown(clauses, expected) -> None:
    selector = {"kind": "all_of", "of": [CLAUSE[c] for c in clauses]}
    assert evaluate_dict(selector, UNKNOWN_NATIONALITY) is expected


@pytest.mark.parametrize(
    ("clauses", "expected"), [(["true", "unknown"], True), (["false", "unknown"], None), (["false", "false"], False)]
)
def test_any_of_is_true_on_any_true_else_unknown_on_any_unknown(clauses, expected) -> None:
    selector = {"kind": "any_of", "of": [CLAUSE[c] for c in clauses]}
    assert evaluate_dict(selector, UNKNOWN_NATIONALITY) is expected


def test_mission_directive_spares_us_nationals_only() -> None:
    scope = DirectiveScope(models=["fable-5", "mythos-5"], selector=FOREIGN)
    assert affected_users(scope.selector, EVERYONE, scope.unknown_attribute) == {3, 4, 5, 6}


def test_accepts_user_models_and_rejects_a_bad_rule() -> None:
    models = [UserUpserted.model_validate(u) for u in EVERYONE]
    assert affected_users(FOREIGN, models) == affected_users(FOREIGN, EVERYONE)
    with pytest.raises(ValueError, match="unknown_attribute"):
        affected_users(FOREIGN, EVERYONE, "maybe")


def test_oracle_agrees_with_the_population_columns() -> None:
    pop = generate(20_000, seed=9, first_id=1)
    us_national = (pop.nat1 == US) | (pop.nat2 == US)
    known_foreign = set(pop.user_id[~pop.nat_unknown & ~us_national].tolist())
    unknown = set(pop.user_id[pop.nat_unknown].tolist())
    users = records(pop, 0, len(pop))
    assert affected_users(FOREIGN, users, "allow") == known_foreign
    assert affected_users(FOREIGN, users, "restrict") == known_foreign | unknown
    employees = {"kind": "all_of", "of": [FOREIGN, {"kind": "account_type", "any_of": ["employee"]}]}
    assert affected_users(employees, users, "allow") == set(
        pop.user_id[~pop.nat_unknown & ~us_national & (pop.account_type == 2)].tolist()
    )
    assert np.any(pop.account_type[~pop.nat_unknown & ~us_national] == 2)
