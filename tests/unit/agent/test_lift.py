"""Lifts drop one directive only: pairs another directive covers stay denied, whatever the order."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import permutations

import pytest

from services.agent.access import AccessIndex
from services.agent.command_effects import Applied, Failed, on_lift, on_restrict
from services.agent.restrictions import Restrictions
from shared.contracts.bitmaps import EMPTY_SCOPE_DIGEST, scope_digest
from tests.unit.agent.builders import lift, restrict

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SETS = {"A": [1, 2, 3], "B": [2, 3, 4], "C": [3, 4, 5]}


def _three_overlapping() -> Restrictions:
    state = Restrictions()
    for directive, users in SETS.items():
        on_restrict(state, restrict(directive, 1, "fable-5", users))
    return state


def _denied(state: Restrictions) -> set[int]:
    index = AccessIndex.of(state.held)
    return {user for user in range(0, 8) if index.check(user, "fable-5", NOW).decision == "deny"}


@pytest.mark.parametrize("order", list(permutations(SETS)))
def test_lift_keeps_users_covered_by_another_directive(order: tuple[str, ...]) -> None:
    state = _three_overlapping()
    remaining = set(SETS)
    for directive in order:
        outcome = on_lift(state, lift(directive, 1))
        remaining.discard(directive)
        assert outcome.acks == (Applied(directive, 1, "lift", scope_digest({}), 0),)
        assert _denied(state) == set().union(*(SETS[d] for d in remaining))


def test_the_decision_names_every_directive_that_denies() -> None:
    index = AccessIndex.of(_three_overlapping().held)
    assert index.check(3, "fable-5", NOW).directives == ("A", "B", "C")
    assert index.check(1, "fable-5", NOW).directives == ("A",)
    assert index.check(1, "mythos-5", NOW).decision == "allow"


def test_lifting_an_older_revision_keeps_the_newer_one() -> None:
    state = Restrictions()
    on_restrict(state, restrict("A", 2, "fable-5", [1]))
    outcome = on_lift(state, lift("A", 1))
    assert state.held["A"].revision == 2
    assert outcome.acks[0].digest == state.held["A"].digest


def test_lift_is_idempotent_and_acknowledged_even_when_nothing_is_held() -> None:
    state = Restrictions()
    assert on_lift(state, lift("A", 1)).acks == (Applied("A", 1, "lift", EMPTY_SCOPE_DIGEST, 0),)
    assert on_lift(state, lift("A", 1)).acks == (Applied("A", 1, "lift", EMPTY_SCOPE_DIGEST, 0),)


def test_lift_discards_staged_chunks_of_the_lifted_revision() -> None:
    state = Restrictions()
    on_restrict(state, restrict("A", 1, "fable-5", [1], chunk=0, chunks=2))
    on_lift(state, lift("A", 1))
    assert state.staging == {}
    (late,) = on_restrict(state, restrict("A", 1, "fable-5", [2], chunk=1, chunks=2)).acks
    assert isinstance(late, Failed) and late.reason.startswith("refused: replayed")  # reported, nothing applied
    assert state.held == {} and state.staging == {}
