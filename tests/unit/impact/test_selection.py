"""Selector semantics over the columnar view: nationality, unknowns, Kleene combinations, deletions."""

from __future__ import annotations

from services.impact.affected import assess
from tests.unit.impact.population_builder import population, scope, user

FOREIGN_TO_US = {"kind": "foreign_national", "home_country": "US"}


def affected_ids(view, directive_scope) -> set[int]:
    return set(assess(view, directive_scope).by_model[directive_scope.models[0]])


def test_dual_nationals_holding_the_home_nationality_are_not_foreign() -> None:
    view = population(user(1, ["US", "IE"]), user(2, ["IE"]), user(3, ["US"]), user(4, ["CN", "RU"]))
    assert affected_ids(view, scope(FOREIGN_TO_US)) == {2, 4}


def test_unknown_nationality_is_restricted_by_default() -> None:
    view = population(user(1, None), user(2, ["US"]))
    result = assess(view, scope(FOREIGN_TO_US))
    assert set(result.by_model["fable-5"]) == {1}
    assert result.unknown_only == 1


def test_unknown_nationality_is_allowed_when_the_directive_says_allow() -> None:
    view = population(user(1, None), user(2, ["FR"]))
    result = assess(view, scope(FOREIGN_TO_US, unknown="allow"))
    assert set(result.by_model["fable-5"]) == {2}
    assert result.unknown_only == 0


def test_employees_are_included_under_foreign_national() -> None:
    view = population(user(1, ["IN"], account_type="employee"), user(2, ["US"], account_type="employee"))
    result = assess(view, scope(FOREIGN_TO_US))
    assert set(result.by_model["fable-5"]) == {1}
    assert result.by_account_type == {"employee": 1}


def test_empty_known_nationalities_hold_none_of_the_home_country() -> None:
    assert affected_ids(population(user(1, [])), scope(FOREIGN_TO_US)) == {1}


def test_residence_unknown_is_unknown_and_counted_under_question_marks() -> None:
    view = population(user(1, residence=None), user(2, residence="US"), user(3, residence="FR"))
    result = assess(view, scope({"kind": "residence", "any_of": ["US"]}))
    assert set(result.by_model["fable-5"]) == {1, 2}
    assert result.by_country == {"??": 1, "US": 1}


def test_not_of_unknown_stays_unknown() -> None:
    view = population(user(1, None), user(2, ["US"]), user(3, ["FR"]))
    negated = {"kind": "not", "of": FOREIGN_TO_US}
    assert affected_ids(view, scope(negated)) == {1, 2}
    assert affected_ids(view, scope(negated, unknown="allow")) == {2}


def test_all_of_with_a_false_clause_is_false_even_when_another_is_unknown() -> None:
    view = population(user(1, None, account_type="consumer"), user(2, None, account_type="employee"))
    selector = {"kind": "all_of", "of": [FOREIGN_TO_US, {"kind": "account_type", "any_of": ["employee"]}]}
    assert affected_ids(view, scope(selector)) == {2}  # user 1: unknown AND false = false


def test_any_of_with_a_true_clause_is_true_even_when_another_is_unknown() -> None:
    view = population(user(1, None, account_type="employee"), user(2, None, account_type="consumer"))
    selector = {"kind": "any_of", "of": [FOREIGN_TO_US, {"kind": "account_type", "any_of": ["employee"]}]}
    assert affected_ids(view, scope(selector, unknown="allow")) == {1}  # user 2: unknown OR false = unknown


def test_organisation_absence_is_known_and_entitlements_match_models() -> None:
    view = population(
        user(1, organisation="org-1", entitlements=("fable-5",)), user(2), user(3, entitlements=("mythos-5",))
    )
    assert affected_ids(view, scope({"kind": "organisation", "any_of": ["org-1", "org-9"]})) == {1}
    assert affected_ids(view, scope({"kind": "not", "of": {"kind": "organisation", "any_of": ["org-1"]}})) == {2, 3}
    assert affected_ids(view, scope({"kind": "entitlement", "any_of": ["mythos-5", "nova-1"]})) == {3}


def test_deleted_users_are_not_affected() -> None:
    view = population(user(1, ["FR"]), user(2, None), user(3, ["FR"]))
    view.delete([1, 2])
    assert affected_ids(view, scope({"kind": "everyone"})) == {3}
    assert affected_ids(view, scope(FOREIGN_TO_US)) == {3}


def test_an_upsert_replaces_the_whole_record() -> None:
    view = population(user(1, ["FR", "DE", "IE", "IT", "ES"], entitlements=("fable-5",)))
    view.upsert([user(1, ["US"])])
    assert affected_ids(view, scope(FOREIGN_TO_US)) == set()
    assert affected_ids(view, scope({"kind": "entitlement", "any_of": ["fable-5"]})) == set()


def test_every_model_of_a_directive_gets_the_same_users() -> None:
    view = population(user(1, ["FR"]), user(7, ["US"]), user(5000, ["CN"]))
    result = assess(view, scope(FOREIGN_TO_US, models=("fable-5", "mythos-5")))
    assert {m: set(u) for m, u in result.by_model.items()} == {"fable-5": {1, 5000}, "mythos-5": {1, 5000}}
