"""Access decisions: deny only inside a directive's window; the checker never answers before it is ready."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.agent.access import AccessChecker, NotReady
from services.agent.commands import on_restrict
from services.agent.restrictions import Restrictions, Window
from tests.unit.agent.builders import restrict

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


def test_window_bounds() -> None:
    window = Window(NOW, NOW + HOUR)
    assert window.contains(NOW) and not window.contains(NOW + HOUR) and not window.contains(NOW - HOUR)
    assert Window().contains(NOW)
