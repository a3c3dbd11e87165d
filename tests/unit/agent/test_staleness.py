"""Staleness: an agent that hears nothing from the control plane keeps or denies outright, per directive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from pyroaring import BitMap

from services.agent.access import AccessChecker
from services.agent.command_effects import on_delta, on_restrict
from services.agent.restriction_store import RestrictionStore
from services.agent.restrictions import Restrictions
from tests.unit.agent.builders import delta, restrict

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BOUND = timedelta(seconds=30)
SECOND = timedelta(seconds=1)


def _checker(*commands) -> AccessChecker:
    state = Restrictions()
    for command in commands:
        on_restrict(state, command, NOW)
    checker = AccessChecker(stale_after=BOUND)
    checker.replace(state.held)
    checker.mark_ready(NOW)
    return checker


def _deny_fable_keep_mythos() -> AccessChecker:
    return _checker(
        restrict("D1", 1, "fable-5", [1, 2]).model_copy(update={"on_stale": "deny_models"}),
        restrict("D2", 1, "mythos-5", [1, 3]),
    )


def test_the_agent_is_stale_only_after_the_bound_without_contact() -> None:
    checker = _checker()
    assert not checker.stale(NOW + BOUND)
    assert checker.stale(NOW + BOUND + SECOND)
    checker.heard(NOW + BOUND)
    assert not checker.stale(NOW + BOUND + SECOND)


def test_a_stale_agent_denies_the_models_of_deny_models_directives_to_everyone() -> None:
    checker = _deny_fable_keep_mythos()
    later = NOW + BOUND + SECOND
    at = later.timestamp()
    assert not checker.denies(99, "fable-5", NOW.timestamp())
    assert checker.denies(99, "fable-5", at) and checker.denies(2**32 - 1, "fable-5", at)
    assert checker.check(99, "fable-5", later).directives == ("D1",)
    assert checker.denies_many(np.array([0, 1, 99]), "fable-5", at).tolist() == [True] * 3


def test_a_stale_agent_keeps_exactly_the_held_users_of_keep_directives() -> None:
    checker = _deny_fable_keep_mythos()
    later = NOW + BOUND + SECOND
    at = later.timestamp()
    assert [checker.denies(u, "mythos-5", at) for u in (1, 2, 3)] == [True, False, True]
    assert checker.denies_many(np.array([3, 2, 1]), "mythos-5", at).tolist() == [True, False, True]
    assert not checker.denies(1, "other-model", at)


def test_hearing_again_restores_the_held_sets() -> None:
    checker = _deny_fable_keep_mythos()
    later = NOW + BOUND + SECOND
    at = later.timestamp()
    assert checker.denies(99, "fable-5", at)
    checker.heard(later)
    assert not checker.denies(99, "fable-5", at) and checker.denies(1, "fable-5", at)
    assert checker.check(99, "fable-5", later).allowed


def test_a_deny_models_directive_outside_its_window_denies_nobody_even_when_stale() -> None:
    checker = _checker(
        restrict("D1", 1, "fable-5", [1], effective_from=NOW + timedelta(hours=1)).model_copy(
            update={"on_stale": "deny_models"}
        )
    )
    assert not checker.denies(5, "fable-5", (NOW + BOUND + SECOND).timestamp())
    assert checker.denies(5, "fable-5", (NOW + timedelta(hours=1)).timestamp())


def test_without_a_bound_the_agent_never_goes_stale() -> None:
    checker = AccessChecker()
    checker.mark_ready(NOW)
    assert not checker.stale(NOW + timedelta(days=365))


def test_the_policy_survives_deltas_and_the_snapshot(tmp_path: Path) -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1]).model_copy(update={"on_stale": "deny_models"}), NOW)
    applied = on_delta(state, delta("D1", 1, 1, "fable-5", added=[5]))
    staged = on_restrict(
        state, restrict("D2", 1, "fable-5", [2], chunk=0, chunks=2).model_copy(update={"on_stale": "deny_models"}), NOW
    )
    assert state.held["D1"].on_stale == "deny_models" and state.held["D1"].sets["fable-5"] == BitMap([1, 5])
    store = RestrictionStore(tmp_path / "s.sqlite3")
    store.record(state, "D1", applied, 0, 0)
    store.record(state, "D2", staged, 0, 1)
    store.close()
    loaded, _ = RestrictionStore(tmp_path / "s.sqlite3").load()
    assert loaded.held == state.held and loaded.held["D1"].on_stale == "deny_models"
    assert loaded.staging[("D2", 1)].on_stale == "deny_models"


def test_the_cached_view_turns_stale_just_after_the_bound_and_back_if_the_clock_does() -> None:
    checker = _deny_fable_keep_mythos()
    deadline = (NOW + BOUND).timestamp()
    assert not checker.denies(99, "fable-5", deadline - 1)
    assert not checker.denies(99, "fable-5", deadline)
    assert checker.denies(99, "fable-5", deadline + 0.001)
    assert not checker.denies(99, "fable-5", deadline - 1)
