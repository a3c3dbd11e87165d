"""The vectorised evaluation equals a brute-force per-user oracle on random selectors and populations."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.impact.affected import assess
from services.impact.user_columns import Population
from shared.contracts.users import UserUpserted
from tests.unit.impact.population_builder import SELECTOR, scope, user

COUNTRIES = ["US", "DE", "CN", "IE"]
ORGS = ["org-1", "org-2"]
MODELS = ["fable-5", "mythos-5"]
ACCOUNTS = ["consumer", "enterprise_member", "employee"]

countries = st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=2, unique=True)
leaves = st.one_of(
    st.just({"kind": "everyone"}),
    st.builds(lambda c: {"kind": "foreign_national", "home_country": c}, st.sampled_from(COUNTRIES)),
    st.builds(lambda cs: {"kind": "nationality", "any_of": cs}, countries),
    st.builds(lambda cs: {"kind": "residence", "any_of": cs}, countries),
    st.builds(
        lambda a: {"kind": "account_type", "any_of": a},
        st.lists(st.sampled_from(ACCOUNTS), min_size=1, max_size=2, unique=True),
    ),
    st.builds(
        lambda o: {"kind": "organisation", "any_of": o},
        st.lists(st.sampled_from(ORGS + ["org-9"]), min_size=1, max_size=2, unique=True),
    ),
    st.builds(
        lambda m: {"kind": "entitlement", "any_of": m},
        st.lists(st.sampled_from(MODELS), min_size=1, max_size=2, unique=True),
    ),
)
selectors = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda c: {"kind": "all_of", "of": c}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: {"kind": "any_of", "of": c}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: {"kind": "not", "of": c}, inner),
    ),
    max_leaves=6,
)
users = st.builds(
    user,
    st.integers(0, 60),
    st.one_of(st.none(), st.lists(st.sampled_from(COUNTRIES), max_size=5, unique=True)),
    st.one_of(st.none(), st.sampled_from(COUNTRIES)),
    st.sampled_from(ACCOUNTS),
    st.one_of(st.none(), st.sampled_from(ORGS)),
    st.lists(st.sampled_from(MODELS), max_size=2, unique=True).map(tuple),
)


def truth(s, u: UserUpserted) -> bool | None:
    """Kleene truth of a selector for one user: True, False or None (unknown)."""
    kind = s.kind
    if kind == "everyone":
        return True
    if kind == "foreign_national":
        return None if u.nationalities is None else s.home_country not in u.nationalities
    if kind == "nationality":
        return None if u.nationalities is None else any(n in s.any_of for n in u.nationalities)
    if kind == "residence":
        return None if u.residence is None else u.residence in s.any_of
    if kind == "account_type":
        return u.account_type in s.any_of
    if kind == "organisation":
        return u.organisation in s.any_of
    if kind == "entitlement":
        return any(m in s.any_of for m in u.entitlements)
    if kind == "not":
        inner = truth(s.of, u)
        return None if inner is None else not inner
    values = [truth(clause, u) for clause in s.of]
    if kind == "all_of":
        return False if False in values else (True if all(values) else None)
    return True if True in values else (False if all(v is False for v in values) else None)


@settings(max_examples=400, deadline=None)
@example(
    {"kind": "not", "of": {"kind": "foreign_national", "home_country": "US"}},
    [user(1, None), user(2, ["US"])],
    [],
    "allow",
)
@example(
    {
        "kind": "any_of",
        "of": [
            {"kind": "residence", "any_of": ["US"]},
            {"kind": "not", "of": {"kind": "nationality", "any_of": ["CN"]}},
        ],
    },
    [user(1, None, None), user(2, ["CN"], "DE")],
    [2],
    "restrict",
)
@given(
    selectors,
    st.lists(users, max_size=40),
    st.lists(st.integers(0, 60), max_size=10),
    st.sampled_from(["restrict", "allow"]),
)
def test_vectorised_evaluation_equals_the_per_user_oracle(selector, records, deleted, unknown) -> None:
    directive_scope = scope(selector, unknown=unknown)
    view = Population(capacity=2)
    latest: dict[int, UserUpserted] = {}
    for record in records:  # one record at a time, as a changelog would deliver them
        view.upsert([record])
        latest[record.user_id] = record
    view.delete(deleted)
    for user_id in deleted:
        latest.pop(user_id, None)
    parsed = SELECTOR.validate_python(selector)
    expected = {
        i for i, u in latest.items() if truth(parsed, u) is True or (truth(parsed, u) is None and unknown == "restrict")
    }
    expected_unknown = sum(1 for u in latest.values() if truth(parsed, u) is None and unknown == "restrict")
    result = assess(view, directive_scope)
    assert set(result.by_model["fable-5"]) == expected
    assert result.unknown_only == expected_unknown
