"""Access decisions: deny only inside a directive's window; the checker never answers before it is ready."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.agent.access import AccessChecker, NotReady
from services.agent.command_effects import on_delta, on_restrict
from services.agent.restrictions import Restrictions, Window
from tests.unit.agent.builders import delta, restrict

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _checker(**window: datetime) -> AccessChecker:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [42], **window))
    checker = AccessChecker()
    checker.replace(state.held)
    checker.mark_ready()
    return checker


def test_a_directive_starting_in_the_future_denies_only_from_its_start() -> None:
    checker = _checker(effective_from=NOW + HOUR)
    assert checker.check(42, "fable-5", NOW).decision == "allow"
    assert checker.check(42, "fable-5", NOW + HOUR).decision == "deny"


def test_an_expired_directive_no_longer_denies() -> None:
    checker = _checker(effective_from=NOW - 2 * HOUR, expires_at=NOW)
    assert checker.check(42, "fable-5", NOW - HOUR).decision == "deny"
    assert checker.check(42, "fable-5", NOW).decision == "allow"


def test_only_the_held_users_and_models_are_denied() -> None:
    checker = _checker()
    assert checker.check(42, "fable-5", NOW).directives == ("D1",)
    assert checker.check(43, "fable-5", NOW).decision == "allow"
    assert checker.check(42, "mythos-5", NOW).decision == "allow"


def test_the_checker_refuses_to_answer_before_it_is_ready() -> None:
    checker = AccessChecker()
    with pytest.raises(NotReady):
        checker.check(1, "fable-5", NOW)
    with pytest.raises(NotReady):
        checker.denies(1, "fable-5", NOW.timestamp())


def test_window_bounds() -> None:
    window = Window(NOW, NOW + HOUR)
    assert window.contains(NOW) and not window.contains(NOW + HOUR) and not window.contains(NOW - HOUR)
    assert Window().contains(NOW)


def _three_overlapping(seed: int) -> AccessChecker:
    rng = np.random.default_rng(seed)
    state = Restrictions()
    windows = [{}, {"effective_from": NOW + HOUR}, {"expires_at": NOW + 2 * HOUR}]
    for i, window in enumerate(windows):
        for model in ("fable-5", "mythos-5")[: 1 + i % 2]:
            users = rng.choice(5000, 1500, replace=False).tolist()
            on_restrict(state, restrict(f"D{i}", 1, model, users, **window), NOW)
    checker = AccessChecker()
    checker.replace(state.held)
    checker.mark_ready()
    return checker


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_single_batch_and_explained_checks_agree_across_window_changes(seed: int) -> None:
    checker = _three_overlapping(seed)
    users = np.random.default_rng(seed + 10).integers(0, 6000, 2000).astype(np.uint32)
    for now in (NOW, NOW + HOUR, NOW + 2 * HOUR, NOW + HOUR / 2):  # also back in time
        for model in ("fable-5", "mythos-5", "other-1"):
            batch = checker.denies_many(users, model, now.timestamp()).tolist()
            single = [checker.denies(int(u), model, now.timestamp()) for u in users]
            explained = [not checker.check(int(u), model, now).allowed for u in users]
            assert batch == single == explained


def test_a_directive_denies_from_its_start_without_new_commands() -> None:
    checker = _checker(effective_from=NOW + HOUR, expires_at=NOW + 2 * HOUR)
    assert not checker.denies(42, "fable-5", NOW.timestamp())
    assert checker.denies(42, "fable-5", (NOW + HOUR).timestamp())
    assert not checker.denies(42, "fable-5", (NOW + 2 * HOUR).timestamp())


def test_replacing_the_held_restrictions_changes_the_next_check() -> None:
    checker = _checker()
    assert checker.denies(42, "fable-5", NOW.timestamp())
    checker.replace({})
    assert not checker.denies(42, "fable-5", NOW.timestamp())
    assert checker.denies_many(np.array([42]), "fable-5", NOW.timestamp()).tolist() == [False]


def test_the_batch_check_refuses_to_answer_before_ready_and_handles_empty_input() -> None:
    with pytest.raises(NotReady):
        AccessChecker().denies_many(np.array([1]), "fable-5", NOW.timestamp())
    assert _checker().denies_many(np.array([], dtype=np.uint32), "fable-5", NOW.timestamp()).tolist() == []


def test_deltas_folded_into_the_built_view_answer_as_a_view_built_afresh() -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1, 2, 3]))
    on_restrict(state, restrict("D2", 1, "fable-5", [3, 4]))
    on_restrict(state, restrict("D3", 1, "mythos-5", [5]))
    checker = AccessChecker()
    checker.replace(state.held)
    checker.mark_ready()
    at = NOW.timestamp()
    assert checker.denies(1, "fable-5", at)  # the view is built: fable-5 a union of two directives
    outcomes = [
        on_delta(state, delta("D1", 1, 1, "fable-5", added=[9], removed=[1, 3])),
        on_delta(state, delta("D3", 1, 1, "mythos-5", added=[6], removed=[5])),
        on_delta(state, delta("D2", 1, 1, "fable-5", added=[1], removed=[4])),
    ]
    for outcome in outcomes:
        checker.apply_deltas(outcome.deltas)
    fresh = AccessChecker()
    fresh.replace(state.held)
    fresh.mark_ready()
    for model in ("fable-5", "mythos-5"):
        answers = [checker.denies(user, model, at) for user in range(12)]
        assert answers == [fresh.denies(user, model, at) for user in range(12)]
    assert checker.denies(3, "fable-5", at)  # removed by D1, still held by D2
    assert (
        not checker.denies(4, "fable-5", at) and checker.denies(9, "fable-5", at) and checker.denies(1, "fable-5", at)
    )
    assert checker.denies(6, "mythos-5", at) and not checker.denies(5, "mythos-5", at)
